/// The steps of a launch, in the order the child runs them (see `qx_spawn.c`). `clone` is the
/// parent's part: opening the cgroup v2 directory and `clone3` itself.
public enum LaunchStep: Int32, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case clone = 0
    case signals = 1
    case cgroupV1 = 2
    case setsid = 3
    case fileDescriptors = 4
    case mountPropagation = 5
    case bindMounts = 6
    case pivotRoot = 7
    case resourceLimits = 8
    case boundingSet = 9
    case keepCapabilities = 10
    case setgroups = 11
    case setgid = 12
    case setuid = 13
    case capabilities = 14
    case ambientCapabilities = 15
    case workingDirectory = 16
    case noNewPrivileges = 17
    case seccomp = 18
    case exec = 19

    public var description: String {
        switch self {
        case .clone: "clone3"
        case .signals: "reset signals"
        case .cgroupV1: "join cgroup v1"
        case .setsid: "setsid"
        case .fileDescriptors: "place descriptors"
        case .mountPropagation: "make mounts private"
        case .bindMounts: "bind-mount jail"
        case .pivotRoot: "pivot_root"
        case .resourceLimits: "set rlimits"
        case .boundingSet: "drop bounding set"
        case .keepCapabilities: "keep capabilities"
        case .setgroups: "setgroups"
        case .setgid: "setgid"
        case .setuid: "setuid"
        case .capabilities: "capset"
        case .ambientCapabilities: "set ambient capabilities"
        case .workingDirectory: "chdir"
        case .noNewPrivileges: "no_new_privs"
        case .seccomp: "load seccomp filter"
        case .exec: "execve"
        }
    }
}

/// Why a launch failed. Whatever the reason, nothing is left behind: a child that started was
/// reaped, and every descriptor the launcher opened is closed.
public enum LaunchError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The plan has problems, each naming its field.
    case invalidPlan(SpawnPlanError)
    /// The seccomp policy could not be compiled.
    case seccomp(SeccompPolicyError)
    /// The launcher's own preparation for a step failed (opening the cgroup directory, creating
    /// mount points, clone3).
    case parent(LaunchStep, SystemError)
    /// A step in the child failed with this errno; the child was reaped.
    case childStep(LaunchStep, errno: Int32)

    public var description: String {
        switch self {
        case .invalidPlan(let error): "invalid spawn plan: \(error)"
        case .seccomp(let error): "seccomp: \(error)"
        case .parent(let step, let error): "preparing \(step): \(error)"
        case .childStep(let step, let code): "child step \(step.rawValue) (\(step)) failed: \(SystemError.name(of: code))"
        }
    }
}
