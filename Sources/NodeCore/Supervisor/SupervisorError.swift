public import LinuxSys

/// What the supervisor can fail with; each case names what it is about.
public enum SupervisorError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A caller-supplied value is unusable: `field`, its `value`, and why.
    case invalidValue(field: String, value: String, reason: String)
    /// `watch` for a VM that is already supervised.
    case alreadyWatched(vmID: String)
    /// `stop` / `exit(of:)` for a VM the supervisor does not know.
    case notWatched(vmID: String)
    /// The process outlived every step of the teardown ladder.
    case survivedTeardown(vmID: String, pid: Int32)
    /// A state record could not be decoded; the file is left for an operator.
    case corruptRecord(path: String, reason: String)
    /// The waiting task was cancelled.
    case cancelled
    /// A system call failed.
    case system(SystemError)

    public var description: String {
        switch self {
        case .invalidValue(let field, let value, let reason): "\(field): \(value) \(reason)"
        case .alreadyWatched(let id): "vm \(id): already supervised"
        case .notWatched(let id): "vm \(id): not supervised"
        case .survivedTeardown(let id, let pid): "vm \(id): pid \(pid) survived SIGKILL's deadline"
        case .corruptRecord(let path, let reason): "state record \(path): \(reason)"
        case .cancelled: "cancelled"
        case .system(let error): error.description
        }
    }
}

/// Checks a name used as a file name (VM id, output name): 1–64 of `A-Z a-z 0-9 . _ -`, no leading dot.
func validateName(_ name: String, field: String) throws(SupervisorError) {
    let allowed = name.utf8.allSatisfy { c in
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2e || c == 0x5f || c == 0x2d
    }
    guard !name.isEmpty, name.utf8.count <= 64, allowed, !name.hasPrefix(".") else {
        throw .invalidValue(field: field, value: "\"\(name)\"",
                            reason: "must be 1-64 characters of A-Z a-z 0-9 . _ - and not start with '.'")
    }
}
