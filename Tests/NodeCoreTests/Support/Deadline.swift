/// A wait in a test that did not end in time.
struct DeadlineExceeded: Error, CustomStringConvertible {
    let what: String
    let limit: Duration
    var description: String { "no \(what) within \(limit)" }
}

/// Runs `body`, failing with ``DeadlineExceeded`` if it has not finished within `limit` (a safety
/// net so a broken build fails instead of hanging, not a timing assertion). `body` is cancelled then.
/// The one deadline timer of this test target; every wait in it goes through here.
func withDeadline<T: Sendable>(
    _ limit: Duration, _ what: String = "result", _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)  // allowed: deadline timer, not a wait
            throw DeadlineExceeded(what: what, limit: limit)
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw DeadlineExceeded(what: what, limit: limit) }
        return first
    }
}

/// ``withDeadline(_:_:_:)`` with the limit in whole seconds.
func withDeadline<T: Sendable>(
    _ seconds: Int = 60, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withDeadline(.seconds(seconds), "result", body)
}
