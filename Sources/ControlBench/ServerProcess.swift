import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A daemon under test, started as a child process: its output goes to a log file and is scanned
/// for the line that says it is ready.
public final class ServerProcess: Sendable {
    public let pid: Int32
    public let logPath: String
    private let ready: Mutex<ReadyState>
    private let exited: Mutex<ExitState>

    private struct ReadyState {
        var line: String?
        var waiter: CheckedContinuation<String, any Error>?
        var ended = false
        var tail: [String] = []
    }

    private struct ExitState {
        var status: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }

    /// Starts `executable` with `arguments`; lines starting with `readyPrefix` mark readiness.
    public init(executable: String, arguments: [String], logPath: String, readyPrefix: String) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0, fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0 else { throw ServerProcessError("pipe", errno: errno) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        let argv = [executable] + arguments
        var pointers: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { pointers.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, nil, &pointers, environ)
        Glibc.close(fds[1])
        guard rc == 0 else {
            Glibc.close(fds[0])
            throw ServerProcessError("posix_spawn \(executable)", errno: rc)
        }
        pid = child
        self.logPath = logPath
        ready = Mutex(ReadyState())
        exited = Mutex(ExitState())
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        let readFD = fds[0]
        // Blocking reads and waitpid run on their own threads, never on the cooperative pool.
        let reader = Thread { [self] in
            self.readLines(readFD, log: log, readyPrefix: readyPrefix)
            Glibc.close(readFD)
            try? log?.close()
        }
        reader.start()
        let spawned = child
        let waiter = Thread { [self] in
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) < 0 && errno == EINTR {}
            let waiters = self.exited.withLock { state in
                state.status = status
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            waiters.forEach { $0.resume(returning: status) }
        }
        waiter.start()
    }

    private func readLines(_ fd: Int32, log: FileHandle?, readyPrefix: String) {
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            log?.write(Data(buffer[0..<count]))
            pending.append(contentsOf: buffer[0..<count])
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                let waiter = ready.withLock { state -> CheckedContinuation<String, any Error>? in
                    state.tail = Array((state.tail + [line]).suffix(20))
                    guard state.line == nil, line.contains(readyPrefix) else { return nil }
                    state.line = line
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume(returning: line)
            }
        }
        let waiter = ready.withLock { state -> (CheckedContinuation<String, any Error>, [String])? in
            state.ended = true
            guard state.line == nil, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter, state.tail)
        }
        if let (waiter, tail) = waiter {
            waiter.resume(throwing: ServerProcessError("exited before it was ready; its last lines:\n" + tail.joined(separator: "\n")))
        }
    }

    /// The ready line, once printed. Throws if the process ends first or `timeout` passes.
    public func readyLine(timeout: Duration) async throws -> String {
        try await withThrowingTaskGroup(of: String.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { continuation in
                    let result = self.ready.withLock { state -> Result<String, any Error>? in
                        if let line = state.line { return .success(line) }
                        if state.ended {
                            return .failure(ServerProcessError("exited before it was ready; its last lines:\n"
                                                               + state.tail.joined(separator: "\n")))
                        }
                        state.waiter = continuation
                        return nil
                    }
                    if let result { continuation.resume(with: result) }
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout) // allowed: deadline timer, not a wait
                throw ServerProcessError("not ready within \(timeout) (log: \(self.logPath))")
            }
            defer { group.cancelAll() }
            guard let line = try await group.next() else { throw CancellationError() }
            return line
        }
    }

    /// Waits for the process to exit; returns its wait status.
    public func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = exited.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Sends `signal` (default SIGTERM) and waits for the exit.
    @discardableResult
    public func stop(signal: Int32 = 15) async -> Int32 {
        if exited.withLock({ $0.status == nil }) { kill(pid, signal) }
        return await waitForExit()
    }
}

public struct ServerProcessError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ message: String, errno: Int32? = nil) {
        description = message + (errno.map { ": " + String(cString: strerror($0)) } ?? "")
    }
}
