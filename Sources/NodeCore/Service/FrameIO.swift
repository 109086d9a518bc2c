import Foundation
public import LinuxSys
#if canImport(Glibc)
import Glibc
#endif

/// Blocking frame reads and writes on a connected stream socket (``NodeProtocol``'s framing).
/// Called on dedicated threads only, never on Swift's cooperative pool.
public enum FrameIO {
    /// Reads one frame's body; `nil` when the peer closed the connection before a new frame.
    /// A receive timeout set on the socket surfaces as `SystemError` with `EAGAIN`.
    public static func readFrame(_ socket: borrowing FileDescriptor) throws(NodeFrameError) -> [UInt8]? {
        guard let header = try readExactly(socket, 4, eofAllowed: true) else { return nil }
        let length = try NodeProtocol.bodyLength(header: header)
        guard let body = try readExactly(socket, length, eofAllowed: false) else { throw .truncated }
        return body
    }

    /// Writes all of `frame` (no SIGPIPE).
    public static func write(_ socket: borrowing FileDescriptor, _ frame: [UInt8]) throws(NodeFrameError) {
        var offset = 0
        while offset < frame.count {
            let count = frame.withUnsafeBytes { raw in
                send(socket.rawValue, raw.baseAddress.map { $0 + offset }, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .io("\(SystemError("send on the node socket", errno: errno))")
            }
            offset += count
        }
    }

    /// Whether a receive failed because of the socket's receive timeout.
    public static func isTimeout(_ error: NodeFrameError) -> Bool {
        if case .io(let reason) = error { return reason.hasPrefix(timeoutMarker) }
        return false
    }

    private static let timeoutMarker = "timed out: "

    private static func readExactly(_ socket: borrowing FileDescriptor, _ count: Int, eofAllowed: Bool) throws(NodeFrameError) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let received = buffer.withUnsafeMutableBytes { raw in
                recv(socket.rawValue, raw.baseAddress.map { $0 + filled }, count - filled, 0)
            }
            if received < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw .io(timeoutMarker + "\(SystemError("recv on the node socket", errno: errno))")
                }
                throw .io("\(SystemError("recv on the node socket", errno: errno))")
            }
            if received == 0 {
                if filled == 0 && eofAllowed { return nil }
                throw .truncated
            }
            filled += received
        }
        return buffer
    }

    /// Sets the socket's receive timeout (`nil`: wait forever).
    public static func setReceiveTimeout(_ socket: borrowing FileDescriptor, _ timeout: Duration?) {
        var value = timeval()
        if let timeout {
            let (seconds, attoseconds) = timeout.components
            let micros = attoseconds / 1_000_000_000_000
            value = timeval(tv_sec: Int(max(0, seconds)), tv_usec: Int(seconds <= 0 ? max(1000, micros) : micros))
        }
        _ = setsockopt(socket.rawValue, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }
}
