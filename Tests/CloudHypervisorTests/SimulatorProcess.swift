import CShims
import Foundation
import LinuxSys
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A `ch-sim` child started the way the node starts cloud-hypervisor: the test binds and listens
/// on the API socket first and hands it over as fd 3 (`--api-socket fd=3`).
final class SimulatorProcess: @unchecked Sendable {
    // Immutable after init except through `reap`, which runs once under `lock`.
    let pid: pid_t
    let directory: String
    let socketPath: String
    let eventsPath: String
    let serialPath: String
    let stdoutPath: String
    private let lock = NSLock()
    private var reaped: Int32?

    /// The simulator binary: `$QARAX_CH_SIM`, else `ch-sim` next to this test binary.
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["QARAX_CH_SIM"] { return path }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // Swift Testing may run from inside an .xctest bundle directory.
        while dir.path != "/" && !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("ch-sim").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("ch-sim").path
    }

    /// The tiny guest built by scripts/guest-artifacts, or a stand-in kernel file holding the
    /// same ready marker (the simulator only looks for the marker).
    static func kernel(in directory: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let built = root.appendingPathComponent(".cache/guest/tiny-pvh.elf").path
        if FileManager.default.fileExists(atPath: built) { return built }
        let path = directory + "/stand-in-kernel"
        try Data("\u{7f}ELF stand-in QARAX-GUEST-READY".utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// `eventMonitor`: a descriptor handed to the child as fd 4 (`--event-monitor fd=4`); the
    /// default writes events to `eventsPath`.
    init(arguments extra: [String] = [], environment: [String: String] = [:], eventMonitor: Int32? = nil) throws {
        let template = "/tmp/qx-chsim-XXXXXX"
        var chars = Array(template.utf8CString)
        guard mkdtemp(&chars) != nil else { throw SystemError("mkdtemp", errno: errno) }
        directory = String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        socketPath = directory + "/api.sock"
        eventsPath = directory + "/events.json"
        serialPath = directory + "/serial.log"
        stdoutPath = directory + "/stdout.log"

        let listener = try UnixSocket.listen(path: socketPath)
        // A private high number so fd 3 in the child is always a fresh dup2 (which clears CLOEXEC).
        let high = fcntl(listener.rawValue, F_DUPFD_CLOEXEC, 100)
        guard high >= 0 else { throw SystemError("fcntl(F_DUPFD_CLOEXEC)", errno: errno) }
        defer { close(high) }
        let out = try FileDescriptor.open(stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, high, 3)
        posix_spawn_file_actions_adddup2(&actions, out.rawValue, 1)
        posix_spawn_file_actions_adddup2(&actions, out.rawValue, 2)
        var monitor = "path=\(eventsPath)"
        var highEvents: Int32 = -1
        defer { if highEvents >= 0 { close(highEvents) } }
        if let eventMonitor {
            highEvents = fcntl(eventMonitor, F_DUPFD_CLOEXEC, 100)
            guard highEvents >= 0 else { throw SystemError("fcntl(F_DUPFD_CLOEXEC)", errno: errno) }
            posix_spawn_file_actions_adddup2(&actions, highEvents, 4)
            monitor = "fd=4"
        }

        let argv = [Self.binary, "--api-socket", "fd=3", "--event-monitor", monitor,
                    "--seccomp", "true", "-v"] + extra
        var env = ["PATH=/usr/bin:/bin"]
        for (k, v) in environment { env.append("\(k)=\(v)") }
        var cArgs = argv.map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var child: pid_t = 0
        let r = posix_spawn(&child, Self.binary, &actions, nil, &cArgs, &cEnv)
        guard r == 0 else { throw SystemError("posix_spawn \(Self.binary)", errno: r) }
        pid = child
    }

    /// Waits for the child to exit, at most `timeout`, on a dedicated thread (pidfd + poll).
    /// Returns the raw wait status, or nil on timeout.
    func waitForExit(timeout: Duration = .seconds(10)) async -> Int32? {
        if let status = lock.withLock({ reaped }) { return status }
        let pid = self.pid
        let ms = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let status: Int32? = await withCheckedContinuation { continuation in
            Thread {
                let pidfd = qx_pidfd_open(pid, 0)
                guard pidfd >= 0 else { return continuation.resume(returning: nil) }
                defer { close(pidfd) }
                var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                var ready: Int32
                repeat { ready = poll(&p, 1, ms) } while ready < 0 && errno == EINTR
                guard ready > 0 else { return continuation.resume(returning: nil) }
                var status: Int32 = 0
                let w = waitpid(pid, &status, 0)
                continuation.resume(returning: w == pid ? status : nil)
            }.start()
        }
        if let status { lock.withLock { reaped = status } }
        return status
    }

    /// Kills the child if it still runs, reaps it and removes its directory.
    func terminate() {
        lock.withLock {
            if reaped == nil {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(pid, &status, 0)
                reaped = status
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The event monitor's bytes so far.
    func eventBytes() throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: eventsPath)))
    }

    func text(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}

func exitedNormally(_ status: Int32?) -> Int32? {
    guard let status, status & 0x7f == 0 else { return nil }
    return (status >> 8) & 0xff
}

func killedBySignal(_ status: Int32?) -> Int32? {
    guard let status, status & 0x7f != 0, status & 0x7f != 0x7f else { return nil }
    return status & 0x7f
}

/// Runs blocking `work` on a dedicated thread, off Swift's cooperative pool.
func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

/// Fails with a timeout when `body` has not finished within `limit` (a deadline, not a pause).
func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)  // allowed: deadline timer, not a wait
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw SystemError("deadline of \(limit) passed", errno: ETIMEDOUT)
        }
        return value
    }
}

/// A connected pair of stream sockets (close-on-exec), e.g. an event monitor and its reader.
struct SocketPair: ~Copyable {
    var reader: FileDescriptor
    var writer: FileDescriptor

    init() throws {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { throw SystemError("socketpair", errno: errno) }
        reader = FileDescriptor(adopting: fds[0])
        writer = FileDescriptor(adopting: fds[1])
    }
}
