/// What went wrong with a VM's cgroup, naming the field, value or path involved.
public enum CgroupError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A limit is out of range: `memory_max: 1000 is below the minimum 1048576 (1 MiB)`.
    case invalidLimit(field: String, value: String, reason: String)
    /// A requested limit needs a controller this host does not offer.
    case controllerUnavailable(controller: String, field: String, layout: CgroupLayout)
    /// A group or parent name that cannot be a cgroup directory name.
    case invalidName(field: String, value: String, reason: String)
    /// No cgroup filesystem is mounted.
    case noCgroupFilesystem
    /// The group still has processes (rmdir gave EBUSY).
    case busy(path: String, pids: [Int32])
    /// The group exists already and has processes in it.
    case inUse(path: String, pids: [Int32])
    /// Processes stayed in the group after every kill round.
    case killIncomplete(remaining: [Int32])
    /// A file of the cgroup filesystem had content we cannot parse.
    case unparsable(path: String, content: String)
    /// A system call failed.
    case system(SystemError)

    public var description: String {
        switch self {
        case let .invalidLimit(field, value, reason):
            return "\(field): \(value) \(reason)"
        case let .controllerUnavailable(controller, field, layout):
            return "\(field): needs the cgroup controller '\(controller)', which this host (\(layout.rawValue) layout) does not offer"
        case let .invalidName(field, value, reason):
            return "\(field): '\(value)' \(reason)"
        case .noCgroupFilesystem:
            return "no cgroup filesystem is mounted (neither cgroup nor cgroup2 in /proc/self/mountinfo)"
        case let .busy(path, pids):
            return "cannot remove \(path): still holds processes \(pids.map(String.init).joined(separator: ", ")) (kill them first)"
        case let .inUse(path, pids):
            return "cgroup \(path) already exists and holds processes \(pids.map(String.init).joined(separator: ", "))"
        case let .killIncomplete(remaining):
            return "processes \(remaining.map(String.init).joined(separator: ", ")) are still in the cgroup after SIGKILL"
        case let .unparsable(path, content):
            return "cannot parse \(path): '\(content)'"
        case let .system(error):
            return error.description
        }
    }
}
