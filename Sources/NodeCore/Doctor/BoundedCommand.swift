#if canImport(Glibc)
import Glibc
#endif
import CShims
public import LinuxSys

/// Runs a short-lived helper (e.g. `qemu-system-x86_64 --version`) without a shell and with a
/// deadline, capturing stdout and stderr together.
///
/// Waits with `poll` on the output pipe and the child's pidfd, so the call blocks the calling
/// thread for at most `timeout`; a child still running then is SIGKILLed. Callers on Swift
/// concurrency run it on a dedicated thread.
public enum BoundedCommand {
    public enum Termination: Equatable, Sendable {
        case exited(Int32)
        case signaled(Int32)
        case timedOut
    }

    public struct Output: Equatable, Sendable {
        public var termination: Termination
        public var text: String
    }

    static let textBusyRetries = 100

    /// The environment the helper gets: nothing of ours is inherited.
    static let environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]

    public static func run(_ path: String, arguments: [String], timeout: Duration,
                           outputLimit: Int = 64 << 10) throws(SystemError) -> Output {
        var fds: (Int32, Int32) = (-1, -1)
        let r = withUnsafeMutablePointer(to: &fds) {
            $0.withMemoryRebound(to: Int32.self, capacity: 2) { qx_pipe2_cloexec($0) }
        }
        if r < 0 { throw SystemError("pipe2", negated: r) }
        let reader = FileDescriptor(adopting: fds.0)
        let pid: pid_t
        do {
            let writer = FileDescriptor(adopting: fds.1)
            pid = try spawn(path, arguments: arguments, output: writer.rawValue)
        }
        let pidfdRaw = qx_pidfd_open(pid, 0)
        if pidfdRaw < 0 {
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            throw SystemError("pidfd_open(\(pid))", negated: pidfdRaw)
        }
        let pidfd = FileDescriptor(adopting: pidfdRaw)
        let clock = ContinuousClock()
        let deadline = clock.now + timeout

        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var timedOut = false
        // Read until EOF (every copy of the write end closed) or the deadline.
        while true {
            guard let ms = milliseconds(until: deadline, clock: clock) else { timedOut = true; break }
            var p = pollfd(fd: reader.rawValue, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, ms)
            if n < 0 { if errno == EINTR { continue }; break }
            if n == 0 { continue }
            let got = chunk.withUnsafeMutableBytes { read(reader.rawValue, $0.baseAddress, $0.count) }
            if got < 0 { if errno == EINTR || errno == EAGAIN { continue }; break }
            if got == 0 { break }
            if bytes.count < outputLimit { bytes.append(contentsOf: chunk[0..<min(got, outputLimit - bytes.count)]) }
        }
        // Then wait for the exit itself, within what is left of the deadline.
        while !timedOut {
            guard let ms = milliseconds(until: deadline, clock: clock) else { timedOut = true; break }
            var p = pollfd(fd: pidfd.rawValue, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, ms)
            if n < 0 && errno == EINTR { continue }
            if n != 0 { break }
        }
        if timedOut { _ = qx_pidfd_send_signal(pidfd.rawValue, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = String(decoding: bytes, as: UTF8.self)
        if timedOut { return Output(termination: .timedOut, text: text) }
        let signal = status & 0x7f
        return Output(termination: signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal), text: text)
    }

    /// Milliseconds left until `deadline` (at least 1), or nil once it has passed.
    private static func milliseconds(until deadline: ContinuousClock.Instant, clock: ContinuousClock) -> Int32? {
        let left = clock.now.duration(to: deadline)
        if left <= .zero { return nil }
        let (seconds, attoseconds) = left.components
        return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
    }

    private static func spawn(_ path: String, arguments: [String], output: Int32) throws(SystemError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for arg in argv { free(arg) }
            for env in envp { free(env) }
        }
        var pid: pid_t = 0
        var rc: Int32 = 0
        // ETXTBSY: the file is still open for writing somewhere, typically a just-written script
        // whose descriptor another thread's fork holds until its exec; that window is short.
        for _ in 0..<Self.textBusyRetries {
            rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
            if rc != ETXTBSY { break }
            sched_yield()
        }
        if rc != 0 { throw SystemError("posix_spawn \(path)", errno: rc) }
        return pid
    }
}
