import CShims
#if canImport(Glibc)
import Glibc
#endif

/// A network namespace to work in: the process's own, a named one (`/run/netns/NAME`, as made by
/// `ip netns add`) or any nsfs path (`/proc/PID/ns/net`).
///
/// Work for a namespace runs on that namespace's dedicated thread (see ``perform(_:)``), never on
/// a Swift task, because `setns` changes the namespace of one OS thread and tasks hop threads.
public struct NetworkNamespace: Hashable, Sendable, CustomStringConvertible {
    public enum Location: Hashable, Sendable {
        /// The namespace the process runs in.
        case current
        /// `/run/netns/NAME`.
        case named(String)
        /// A namespace file such as `/proc/PID/ns/net`.
        case path(String)
    }

    /// Directory where named namespaces are bind-mounted (the `ip netns` convention).
    public static let namedDirectory = "/run/netns"

    public let location: Location

    public init(_ location: Location) { self.location = location }

    /// The process's own network namespace.
    public static let current = NetworkNamespace(.current)

    /// The named namespace `/run/netns/NAME`.
    public static func named(_ name: String) -> NetworkNamespace { NetworkNamespace(.named(name)) }

    /// The namespace bound at `path`.
    public static func path(_ path: String) -> NetworkNamespace { NetworkNamespace(.path(path)) }

    /// The file that names the namespace.
    public var filePath: String {
        switch location {
        case .current: "/proc/self/ns/net"
        case let .named(name): "\(Self.namedDirectory)/\(name)"
        case let .path(path): path
        }
    }

    public var description: String {
        switch location {
        case .current: "current network namespace"
        case let .named(name): "network namespace '\(name)'"
        case let .path(path): "network namespace at \(path)"
        }
    }

    /// Why `name` cannot name a namespace under /run/netns, or nil when it can.
    public static func problem(withName name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name.utf8.count > 255 { return "is longer than 255 bytes" }
        if name == "." || name == ".." { return "is reserved" }
        if name.utf8.contains(0x2F) { return "contains '/'" }
        if name.utf8.contains(0) { return "contains a NUL byte" }
        return nil
    }

    /// Runs `body` on this namespace's dedicated thread and returns its result.
    ///
    /// The thread entered the namespace once (`setns`) and, for a namespace other than the
    /// process's own, has a private mount namespace with a sysfs of that network namespace on
    /// `/sys`. Netlink sockets and `/dev/net/tun` opened in `body` belong to this namespace.
    /// Throws ``NetworkNamespaceError`` when the namespace cannot be entered, else what `body` throws.
    public func perform<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let thread = try NamespaceThreads.shared.thread(for: self)
        return try await withCheckedThrowingContinuation { continuation in
            thread.enqueue { setupError in
                if let setupError {
                    continuation.resume(throwing: setupError)
                    return
                }
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    /// Stops this namespace's dedicated thread (after its queued work), so it no longer holds the
    /// namespace alive; the next ``perform(_:)`` starts a new one. ``delete(named:)`` does this.
    public func releaseThread() {
        NamespaceThreads.shared.retire(path: filePath)
    }
}

/// Why a network namespace could not be used.
public enum NetworkNamespaceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The name is not usable under /run/netns.
    case invalidName(String, reason: String)
    /// Nothing exists at the namespace's path.
    case notFound(NetworkNamespace)
    /// The path exists but is no network namespace (`setns` refused it with EINVAL).
    case notANetworkNamespace(NetworkNamespace)
    /// A named namespace of that name exists already.
    case alreadyExists(NetworkNamespace)
    /// Any other failure, with the kernel's errno.
    case system(SystemError)

    public var description: String {
        switch self {
        case let .invalidName(name, reason): "network namespace name '\(name)' \(reason)"
        case let .notFound(ns): "\(ns) does not exist (\(ns.filePath))"
        case let .notANetworkNamespace(ns): "\(ns.filePath) is not a network namespace"
        case let .alreadyExists(ns): "\(ns) exists already (\(ns.filePath))"
        case let .system(error): error.description
        }
    }

    public var errno: Int32 {
        switch self {
        case .invalidName, .notANetworkNamespace: EINVAL
        case .notFound: ENOENT
        case .alreadyExists: EEXIST
        case let .system(error): error.errno
        }
    }
}
