import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Follows a control daemon's `/v1/events` server-sent events over a plain socket, read on a
/// dedicated thread (blocking reads stay off the cooperative pool). Each event arrives as
/// (action, data) on `events`, the history first (`since=0`), then live ones.
final class EventStreamReader: Sendable {
    struct Event: Sendable {
        var action: String
        var data: String
    }

    let events: AsyncStream<Event>
    private let fd: Int32

    init(port: Int, token: String) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            Glibc.close(fd)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
        let request = "GET /v1/events?since=0&follow=true HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        self.fd = fd
        let (events, feed) = AsyncStream.makeStream(of: Event.self)
        self.events = events
        Thread {
            var pending = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 16384)
            var action: String?
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                pending.append(contentsOf: buffer[0..<count])
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[..<newline], as: UTF8.self)
                    pending.removeSubrange(...newline)
                    if line.hasPrefix("event: ") {
                        action = String(line.dropFirst(7))
                    } else if line.hasPrefix("data: "), let current = action {
                        feed.yield(Event(action: current, data: String(line.dropFirst(6))))
                        action = nil
                    }
                }
            }
            feed.finish()
        }.start()
    }

    /// Waits until an event with `action` has been seen for each of `subjects` (matched in its
    /// data; history included); returns those never seen before the stream ended.
    func await(_ action: String, for subjects: [String]) async -> Set<String> {
        var missing = Set(subjects)
        for await event in events where event.action == action {
            missing = missing.filter { !event.data.contains($0) }
            if missing.isEmpty { break }
        }
        return missing
    }

    /// Ends the stream (the reader thread sees the shutdown and finishes it).
    func close() { shutdown(fd, Int32(SHUT_RDWR)) }

    deinit { Glibc.close(fd) }
}

/// `body`'s value, or nil when `deadline` passes first.
func within<T: Sendable>(_ deadline: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: deadline) // allowed: deadline timer, not a wait
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
}
