#if canImport(Glibc)
import Glibc
#endif
import CShims

/// A process the launcher started: its pid, a pidfd that owns the right to reap it, and its
/// identity (pid + start time) for durable state.
///
/// Whoever holds this value supervises the process; the pidfd is what an epoll reactor watches.
/// Dropping the value closes the pidfd but neither kills nor reaps the process (VMMs outlive
/// their supervisor; a new one re-attaches with `pidfd_open`).
public struct SpawnedProcess: ~Copyable, Sendable {
    public let pid: Int32
    public let pidfd: FileDescriptor
    public let identity: ProcessIdentity

    public init(pid: Int32, pidfd: consuming FileDescriptor, identity: ProcessIdentity) {
        self.pid = pid
        self.pidfd = pidfd
        self.identity = identity
    }

    /// How a process ended.
    public enum Exit: Hashable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signaled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// Sends `signal` through the pidfd (never to a recycled pid).
    public func signal(_ signal: Int32) throws(SystemError) {
        let result = qx_pidfd_send_signal(pidfd.rawValue, signal)
        if result < 0 { throw SystemError("pidfd_send_signal(\(pid), \(signal))", negated: result) }
    }

    /// Blocks the calling thread until the process exits, and reaps it. For tools, tests and
    /// benchmarks on a dedicated thread; the node's supervisor waits through its reactor instead.
    public func waitBlocking() throws(SystemError) -> Exit {
        var code: Int32 = 0
        var status: Int32 = 0
        let result = qx_pidfd_wait(pidfd.rawValue, &code, &status)
        if result < 0 { throw SystemError("waitid(P_PIDFD, \(pid))", negated: result) }
        return Self.exit(code: code, status: status)
    }

    /// Reaps the process if it has exited; nil while it runs. Never blocks.
    public func tryWait() throws(SystemError) -> Exit? {
        var code: Int32 = 0
        var status: Int32 = 0
        let result = qx_pidfd_try_wait(pidfd.rawValue, &code, &status)
        if result < 0 { throw SystemError("waitid(P_PIDFD, WNOHANG, \(pid))", negated: result) }
        return result == 0 ? nil : Self.exit(code: code, status: status)
    }

    static func exit(code: Int32, status: Int32) -> Exit {
        code == Int32(CLD_EXITED) ? .exited(status) : .signaled(status)
    }
}
