import Testing

/// Tests that change the host's hugepage pool (`nr_hugepages`) or count its free pages exactly
/// must not overlap: Swift Testing runs suites in parallel, and one test's reservation would be
/// another's shortage. `.hugepagePool` runs the test (or the whole suite) while holding one
/// process-wide lock; waiters queue in order and are resumed, never polled.
struct HugepagePoolTrait: TestTrait, SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        await HugepagePoolLock.shared.acquire()
        do {
            try await function()
        } catch {
            await HugepagePoolLock.shared.release()
            throw error
        }
        await HugepagePoolLock.shared.release()
    }
}

extension Trait where Self == HugepagePoolTrait {
    /// Holds the host hugepage pool exclusively for the test or suite.
    static var hugepagePool: Self { HugepagePoolTrait() }
}

actor HugepagePoolLock {
    static let shared = HugepagePoolLock()

    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !held {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            held = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}
