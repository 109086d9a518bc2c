public import LinuxSys

/// Everything NetPlumbing reports. Kernel failures keep their errno (`.system`).
public enum NetPlumbingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Bad input, found before anything touched the kernel: `field: value reason`.
    case invalidArgument(field: String, value: String, reason: String)
    /// A syscall or netlink request failed; the errno is the kernel's own.
    case system(SystemError)

    public var description: String {
        switch self {
        case let .invalidArgument(field, value, reason): "\(field): '\(value)' \(reason)"
        case let .system(error): error.description
        }
    }

    /// The kernel's errno, when the kernel refused.
    public var errno: Int32? {
        if case let .system(error) = self { return error.errno }
        return nil
    }
}
