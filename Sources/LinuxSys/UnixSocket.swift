import CShims
#if canImport(Glibc)
import Glibc
#endif

/// Unix-domain stream sockets: listening sockets handed to a child before it starts, client
/// connections, and messages that carry file descriptors (`SCM_RIGHTS`).
public enum UnixSocket {
    /// The most descriptors one message carries.
    public static let maxDescriptorsPerMessage = Int(QX_UNIX_MAX_FDS)

    /// Binds a stream socket at `path` and listens on it (close-on-exec set).
    ///
    /// For `--api-socket fd=N`: the node binds and listens before spawning the VMM, so the
    /// socket accepts connections from the first instant and nobody polls for a socket file.
    public static func listen(path: String, backlog: Int32 = 16) throws(SystemError) -> FileDescriptor {
        let r = qx_unix_listen(path, backlog)
        if r < 0 { throw SystemError("bind+listen unix socket \(path)", negated: r) }
        return FileDescriptor(adopting: r)
    }

    /// Connects to the stream socket listening at `path` (close-on-exec set).
    ///
    /// `timeout` bounds a connect that blocks because the listener's backlog is full (a peer that
    /// stopped accepting); it fails with `EAGAIN` then. The timeout stays set for sends.
    public static func connect(path: String, timeout: Duration? = nil) throws(SystemError) -> FileDescriptor {
        var ms: Int32 = 0
        if let timeout {
            let (seconds, attoseconds) = timeout.components
            ms = max(1, Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000))
        }
        let r = qx_unix_connect(path, ms)
        if r < 0 { throw SystemError("connect unix socket \(path)", negated: r) }
        return FileDescriptor(adopting: r)
    }

    /// Accepts one connection (close-on-exec set).
    public static func accept(_ listener: borrowing FileDescriptor) throws(SystemError) -> FileDescriptor {
        let r = qx_unix_accept(listener.rawValue)
        if r < 0 { throw SystemError("accept on fd \(listener.rawValue)", negated: r) }
        return FileDescriptor(adopting: r)
    }

    /// Sends all of `bytes`; `descriptors` (duplicated by the kernel, still owned by the caller)
    /// travel with the first byte as `SCM_RIGHTS`, so they need at least one byte. Never raises
    /// SIGPIPE.
    public static func send(_ socket: borrowing FileDescriptor, _ bytes: [UInt8], descriptors: [Int32] = []) throws(SystemError) {
        guard descriptors.count <= maxDescriptorsPerMessage, bytes.count > 0 || descriptors.isEmpty else {
            throw SystemError("sendmsg of \(bytes.count) bytes with \(descriptors.count) descriptors", errno: EINVAL)
        }
        var offset = 0
        var fds = descriptors
        while offset < bytes.count {
            let n: Int = bytes.withUnsafeBytes { raw in
                fds.withUnsafeBufferPointer { fdBuffer in
                    guard let base = raw.baseAddress else { return -Int(EINVAL) }
                    return qx_unix_send_fds(socket.rawValue, base + offset, raw.count - offset,
                                            fdBuffer.baseAddress, Int32(fdBuffer.count))
                }
            }
            if n < 0 { throw SystemError("sendmsg on fd \(socket.rawValue)", errno: Int32(-n)) }
            offset += n
            fds = []
        }
    }

    /// Receives up to `maxBytes` bytes and the descriptors that came with them.
    /// An empty `bytes` means the peer closed its end.
    public static func receive(_ socket: borrowing FileDescriptor, maxBytes: Int = 64 * 1024) throws(SystemError) -> Received {
        var buffer = [UInt8](repeating: 0, count: max(1, maxBytes))
        var fds = [Int32](repeating: -1, count: maxDescriptorsPerMessage)
        var count: Int32 = 0
        var truncated: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { raw in
            fds.withUnsafeMutableBufferPointer { fdBuffer -> Int in
                guard let base = raw.baseAddress, let fdBase = fdBuffer.baseAddress else { return -Int(EINVAL) }
                return qx_unix_recv_fds(socket.rawValue, base, raw.count, fdBase, Int32(fdBuffer.count),
                                        &count, &truncated)
            }
        }
        if n < 0 { throw SystemError("recvmsg on fd \(socket.rawValue)", errno: Int32(-n)) }
        buffer.removeSubrange(n...)
        return Received(bytes: buffer, descriptors: ReceivedDescriptors(Array(fds[0..<Int(count)])),
                        descriptorsTruncated: truncated != 0)
    }

    /// What one `receive` got.
    public struct Received: ~Copyable {
        public var bytes: [UInt8]
        public var descriptors: ReceivedDescriptors
        /// The kernel dropped descriptors that did not fit (`MSG_CTRUNC`).
        public var descriptorsTruncated: Bool

        /// Moves the descriptors out, leaving none behind.
        public mutating func takeDescriptors() -> ReceivedDescriptors {
            var taken = ReceivedDescriptors([])
            swap(&taken, &descriptors)
            return taken
        }
    }
}

/// Descriptors received over a socket: closed together unless taken.
public struct ReceivedDescriptors: ~Copyable {
    private var numbers: [Int32]

    public init(_ numbers: [Int32]) { self.numbers = numbers }

    public var count: Int { numbers.count }
    public var isEmpty: Bool { numbers.isEmpty }
    /// The raw numbers, still owned by this value.
    public var rawValues: [Int32] { numbers }

    /// Adds `other`'s descriptors to these.
    public mutating func append(_ other: consuming ReceivedDescriptors) {
        numbers += other.take()
    }

    /// Gives up ownership; the caller must close the numbers.
    public consuming func take() -> [Int32] {
        let taken = numbers
        numbers = []
        return taken
    }

    deinit {
        for fd in numbers { _ = Glibc.close(fd) }
    }
}
