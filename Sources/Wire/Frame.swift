public import NIOCore

/// The kind of payload a frame carries (header byte 5). Values are never reused.
public enum WireMessageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case hello = 1
    case helloAck = 2
    case request = 3
    case response = 4
    case error = 5
    case event = 6
    case heartbeat = 7
    case heartbeatAck = 8
    case goodbye = 9

    public var description: String {
        switch self {
        case .hello: "hello"
        case .helloAck: "hello-ack"
        case .request: "request"
        case .response: "response"
        case .error: "error"
        case .event: "event"
        case .heartbeat: "heartbeat"
        case .heartbeatAck: "heartbeat-ack"
        case .goodbye: "goodbye"
        }
    }
}

/// One frame: the fixed 20-byte header's fields and the payload bytes.
///
/// ```
///  0      4    5    6         8                  16         20
///  +------+----+----+---------+------------------+----------+---------------+
///  | QXWR | v  | ty | flags   | request id (u64) | len (u32)| payload (len) |
///  +------+----+----+---------+------------------+----------+---------------+
/// ```
/// All integers are big-endian.
public struct WireFrame: Sendable, Hashable {
    public var type: WireMessageType
    /// Reserved for future use: senders write 0, receivers ignore bits they do not know.
    public var flags: UInt16
    /// Matches a response or error to its request; 0 for frames outside a request.
    public var requestID: UInt64
    public var payload: ByteBuffer

    public init(type: WireMessageType, flags: UInt16 = 0, requestID: UInt64 = 0, payload: ByteBuffer) {
        self.type = type
        self.flags = flags
        self.requestID = requestID
        self.payload = payload
    }
}

/// Constants of the frame format.
public enum WireFormat {
    /// `"QXWR"`: the first four bytes of every frame.
    public static let magic: UInt32 = 0x5158_5752
    /// The frame format version this library reads and writes (header byte 4).
    public static let frameVersion: UInt8 = 1
    /// Bytes in the fixed header.
    public static let headerSize = 20
    /// The default limit of one frame, header included.
    public static let defaultMaxFrameSize = 1 << 20
    /// Message-schema versions this library speaks, offered in Hello.
    public static let protocolVersions: [UInt32] = [1]
}

/// Why a byte stream is not a valid sequence of frames. Any of these closes the connection.
public enum WireFrameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The first four bytes of a frame are not `QXWR`.
    case badMagic(found: UInt32)
    /// Header byte 4 names a frame format this library does not read.
    case unsupportedVersion(UInt8)
    /// Header byte 5 names no known message type.
    case unknownMessageType(UInt8)
    /// The header announces more bytes than the limit; refused before buffering any of them.
    case oversized(frameSize: Int, limit: Int)
    /// The stream ended inside a frame.
    case truncated(buffered: Int, needed: Int)
    /// The payload is not a valid encoding of the message its type names.
    case malformedPayload(type: WireMessageType, reason: String)

    public var description: String {
        switch self {
        case .badMagic(let found):
            "frame header: magic 0x\(String(found, radix: 16)) is not 0x\(String(WireFormat.magic, radix: 16)) (\"QXWR\")"
        case .unsupportedVersion(let version):
            "frame header: version \(version) is not supported (this side reads version \(WireFormat.frameVersion))"
        case .unknownMessageType(let type):
            "frame header: message type \(type) is unknown"
        case .oversized(let size, let limit):
            "frame header: frame of \(size) bytes is above the limit of \(limit) bytes"
        case .truncated(let buffered, let needed):
            "stream ended inside a frame: \(buffered) of \(needed) bytes received"
        case .malformedPayload(let type, let reason):
            "\(type) payload: \(reason)"
        }
    }
}
