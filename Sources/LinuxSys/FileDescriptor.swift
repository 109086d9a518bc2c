#if canImport(Glibc)
import Glibc
#endif

/// A file descriptor this value owns: closed exactly once, when the value is consumed or dies.
///
/// Noncopyable so ownership is explicit; hand the raw number over to someone else with `take()`.
public struct FileDescriptor: ~Copyable, Sendable {
    public let rawValue: Int32

    public init(adopting rawValue: Int32) {
        precondition(rawValue >= 0, "adopting a negative file descriptor")
        self.rawValue = rawValue
    }

    /// Gives up ownership without closing; the caller now owns the number.
    public consuming func take() -> Int32 {
        let fd = rawValue
        discard self
        return fd
    }

    /// Closes now, reporting the error `close` gives (the descriptor is gone either way).
    public consuming func close() throws(SystemError) {
        let fd = rawValue
        discard self
        if Glibc.close(fd) < 0 && Glibc.errno != EINTR {
            throw SystemError("close(\(fd))", errno: Glibc.errno)
        }
    }

    /// A duplicate with close-on-exec set.
    public func duplicate() throws(SystemError) -> FileDescriptor {
        let fd = fcntl(rawValue, F_DUPFD_CLOEXEC, 0)
        if fd < 0 { throw SystemError("fcntl(F_DUPFD_CLOEXEC)", errno: Glibc.errno) }
        return FileDescriptor(adopting: fd)
    }

    /// Opens `path` with close-on-exec always added.
    public static func open(_ path: String, _ flags: Int32, mode: UInt32 = 0) throws(SystemError) -> FileDescriptor {
        let fd = try retryingOnInterrupt("open \(path)") { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(adopting: fd)
    }

    deinit {
        _ = Glibc.close(rawValue)
    }
}
