public import LinuxSys
#if canImport(Glibc)
import Glibc
#endif

/// Everything NetPlumbing reports. Kernel failures keep their errno (`.system`).
public enum NetPlumbingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Bad input, found before anything touched the kernel: `field: value reason`.
    case invalidArgument(field: String, value: String, reason: String)
    /// A syscall or netlink request failed; the errno is the kernel's own.
    case system(SystemError)
    /// The namespace to work in could not be used.
    case namespace(NetworkNamespaceError)
    /// A link named by `field` does not exist in the namespace (ENODEV).
    case linkNotFound(field: String, name: String, namespace: String)
    /// An MTU outside what the link accepts; `limit` says whose maximum applies.
    case mtuOutOfRange(field: String, value: Int, minimum: Int, maximum: Int, limit: String)
    /// A link of that name exists with other attributes than requested (EEXIST).
    case conflictingLink(name: String, differences: [LinkDifference])

    public var description: String {
        switch self {
        case let .invalidArgument(field, value, reason): "\(field): '\(value)' \(reason)"
        case let .system(error): error.description
        case let .namespace(error): error.description
        case let .linkNotFound(field, name, namespace):
            "\(field): link '\(name)' does not exist in \(namespace) (ENODEV)"
        case let .mtuOutOfRange(field, value, minimum, maximum, limit):
            value < minimum
                ? "\(field): \(value) is below the minimum \(minimum) (allowed \(minimum)…\(maximum))"
                : "\(field): \(value) is above \(limit) maximum \(maximum) (allowed \(minimum)…\(maximum))"
        case let .conflictingLink(name, differences):
            "link '\(name)' exists with other attributes (EEXIST): "
                + differences.map(\.description).joined(separator: "; ")
        }
    }

    /// The kernel's errno, or the one that best describes the refusal.
    public var errno: Int32? {
        switch self {
        case .invalidArgument: nil
        case let .system(error): error.errno
        case let .namespace(error): error.errno
        case .linkNotFound: ENODEV
        case .mtuOutOfRange: EINVAL
        case .conflictingLink: EEXIST
        }
    }
}

/// One attribute in which an existing link differs from a request.
public struct LinkDifference: Hashable, Sendable, CustomStringConvertible {
    public let field: String
    public let existing: String
    public let requested: String

    public init(field: String, existing: String, requested: String) {
        self.field = field
        self.existing = existing
        self.requested = requested
    }

    public var description: String { "\(field): existing \(existing), requested \(requested)" }
}
