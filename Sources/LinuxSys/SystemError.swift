#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: what was attempted and the kernel's errno, unflattened.
///
/// The one error type of the syscall layer. Modules above map it into their own domain errors,
/// keeping `errno` so callers can still match on `EEXIST`, `EBUSY`, `ENODEV`…
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was attempted, e.g. `ioctl(TUNSETIFF) on tap0` or `open /dev/net/tun`.
    public let operation: String
    /// The kernel's errno (positive).
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// Builds the error from a shim result `-errno`.
    public init(_ operation: String, negated result: Int32) {
        self.init(operation, errno: -result)
    }

    /// The symbolic name, e.g. `EEXIST`, or `errno N` when unknown.
    public var errnoName: String { Self.name(of: errno) }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (\(errnoName))"
    }

    public static func name(of code: Int32) -> String {
        switch code {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case ESRCH: "ESRCH"
        case EINTR: "EINTR"
        case EIO: "EIO"
        case ENXIO: "ENXIO"
        case E2BIG: "E2BIG"
        case EBADF: "EBADF"
        case ECHILD: "ECHILD"
        case EAGAIN: "EAGAIN"
        case ENOMEM: "ENOMEM"
        case EACCES: "EACCES"
        case EFAULT: "EFAULT"
        case EBUSY: "EBUSY"
        case EEXIST: "EEXIST"
        case ENODEV: "ENODEV"
        case ENOTDIR: "ENOTDIR"
        case EISDIR: "EISDIR"
        case EINVAL: "EINVAL"
        case ENFILE: "ENFILE"
        case EMFILE: "EMFILE"
        case ENOTTY: "ENOTTY"
        case ENOSPC: "ENOSPC"
        case EROFS: "EROFS"
        case EPIPE: "EPIPE"
        case ERANGE: "ERANGE"
        case ENAMETOOLONG: "ENAMETOOLONG"
        case ENOSYS: "ENOSYS"
        case ENOTEMPTY: "ENOTEMPTY"
        case ELOOP: "ELOOP"
        case EOPNOTSUPP: "EOPNOTSUPP"
        case EADDRINUSE: "EADDRINUSE"
        case EADDRNOTAVAIL: "EADDRNOTAVAIL"
        case ENETDOWN: "ENETDOWN"
        case ECONNREFUSED: "ECONNREFUSED"
        case ECONNRESET: "ECONNRESET"
        case ETIMEDOUT: "ETIMEDOUT"
        case ENOBUFS: "ENOBUFS"
        case EPROTONOSUPPORT: "EPROTONOSUPPORT"
        case EAFNOSUPPORT: "EAFNOSUPPORT"
        case ENOTSUP: "ENOTSUP"
        default: "errno \(code)"
        }
    }
}

/// Runs `body` until it stops failing with EINTR; a negative result becomes a `SystemError`.
public func retryingOnInterrupt(_ operation: @autoclosure () -> String, _ body: () -> Int32) throws(SystemError) -> Int32 {
    while true {
        let r = body()
        if r >= 0 { return r }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(operation(), errno: code)
    }
}
