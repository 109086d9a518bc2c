#if canImport(Glibc)
import Glibc
#endif
import LinuxSys

/// The few Unix-socket calls the QMP client needs; every descriptor is close-on-exec.
enum QMPSocket {
    static let streamCloexec = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    static let streamCloexecNonblocking = streamCloexec | Int32(SOCK_NONBLOCK.rawValue)

    /// A blocking connect to the stream socket at `path` (connecting to a listening Unix socket
    /// does not wait for the peer to accept). Runs on the client's I/O thread.
    static func connect(path: String) throws(SystemError) -> FileDescriptor {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw SystemError("connect \(path): not a Unix socket path of 1...\(capacity - 1) bytes", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let fd = try retryingOnInterrupt("socket(AF_UNIX)") { socket(AF_UNIX, streamCloexec, 0) }
        let socketFD = FileDescriptor(adopting: fd)
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socketFD.rawValue, $0, length) }
        }
        if result < 0 { throw SystemError("connect \(path)", errno: errno) }
        return socketFD
    }

    /// A connected pair (both ends non-blocking), used to wake the I/O thread.
    /// The caller owns both numbers.
    static func wakePair() throws(SystemError) -> (reader: Int32, writer: Int32) {
        var fds: [Int32] = [-1, -1]
        let result = socketpair(AF_UNIX, streamCloexecNonblocking, 0, &fds)
        if result < 0 { throw SystemError("socketpair(AF_UNIX)", errno: errno) }
        return (fds[0], fds[1])
    }

    static func setNonBlocking(_ fd: Int32) throws(SystemError) {
        let flags = fcntl(fd, F_GETFL)
        if flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 {
            throw SystemError("fcntl(O_NONBLOCK)", errno: errno)
        }
    }
}
