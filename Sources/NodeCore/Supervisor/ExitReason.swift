#if canImport(Glibc)
import Glibc
#endif
public import LinuxSys

/// Why a supervised VMM process ended, as precisely as the kernel and our own records tell.
public enum ExitReason: Sendable, Hashable, CustomStringConvertible {
    /// The process exited on its own with this status.
    case exited(status: Int32)
    /// A signal we did not send ended it (and it was neither SIGSYS nor an OOM kill).
    case signaled(signal: Int32, coreDumped: Bool)
    /// SIGSYS ended it: a seccomp filter in kill mode. By status alone this is indistinguishable from
    /// someone sending SIGSYS by hand (both report CLD_KILLED, or CLD_DUMPED when a core was written).
    case killedBySeccomp(coreDumped: Bool)
    /// SIGKILL ended it and the cgroup's OOM-kill counter grew while we watched.
    case oomKilled
    /// Our teardown sent the signal that ended it.
    case killedByUs(signal: Int32)
    /// The process is gone but was not our child (re-adopted), so its status is unknown.
    case exitedUnknownStatus

    /// Classifies a kernel-reported exit. `signalsSent` are the signals our teardown sent;
    /// `oomKills` the OOM-kill counter at watch start and after the exit, when known.
    public static func classify(
        _ exit: ChildExit, signalsSent: Set<Int32>, oomKillsAtStart: UInt64?, oomKillsAtExit: UInt64?
    ) -> ExitReason {
        let oomGrew = if let before = oomKillsAtStart, let after = oomKillsAtExit { after > before } else { false }
        switch exit {
        case .exited(let status):
            return .exited(status: status)
        case .signaled(let signal, let core):
            if signalsSent.contains(signal) { return .killedByUs(signal: signal) }
            if signal == SIGKILL && oomGrew { return .oomKilled }
            if signal == SIGSYS { return .killedBySeccomp(coreDumped: core) }
            return .signaled(signal: signal, coreDumped: core)
        case .exitedUnknownStatus:
            return oomGrew ? .oomKilled : .exitedUnknownStatus
        }
    }

    public var description: String {
        switch self {
        case .exited(let status): "exited with status \(status)"
        case .signaled(let signal, let core): "killed by signal \(signal)\(core ? " (core dumped)" : "")"
        case .killedBySeccomp: "killed by seccomp (SIGSYS)"
        case .oomKilled: "killed by the OOM killer"
        case .killedByUs(let signal): "stopped by us with signal \(signal)"
        case .exitedUnknownStatus: "exited (status unknown)"
        }
    }
}

/// The step of a teardown ladder.
public enum TeardownStep: String, Sendable, Hashable, Codable {
    case graceful, terminate, kill
}

/// One delivered exit of a supervised process.
public struct ProcessExit: Sendable, Hashable {
    public let vmID: String
    public let identity: ProcessIdentity
    public let reason: ExitReason
    /// What the kernel reported.
    public let status: ChildExit
    /// The teardown step in progress when the exit was seen; `nil` when it happened on its own.
    public let duringTeardownStep: TeardownStep?
    /// Output bytes dropped from the VM's logs (buffer full or disk errors).
    public let droppedLogBytes: UInt64
}
