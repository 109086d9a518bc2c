/// How a watched process ended, as the kernel reports it.
public enum ChildExit: Sendable, Hashable, CustomStringConvertible {
    /// The process called `exit` with this status.
    case exited(status: Int32)
    /// A signal ended the process; `coreDumped` when the kernel reported `CLD_DUMPED`.
    case signaled(signal: Int32, coreDumped: Bool)
    /// The process is gone, but it was not our child (re-adopted after a daemon restart), so
    /// `waitid` answers `ECHILD` and the status is unknowable.
    case exitedUnknownStatus

    public var description: String {
        switch self {
        case .exited(let status): "exited with status \(status)"
        case .signaled(let signal, let core): "killed by signal \(signal)\(core ? " (core dumped)" : "")"
        case .exitedUnknownStatus: "exited (status unknown: not our child)"
        }
    }
}
