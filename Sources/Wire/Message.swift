public import NIOCore
import SwiftProtobuf

/// A decoded frame: its request id and its typed payload.
public struct WireEnvelope: Sendable, Equatable {
    public var requestID: UInt64
    public var message: WireMessage

    public init(requestID: UInt64 = 0, _ message: WireMessage) {
        self.requestID = requestID
        self.message = message
    }

    /// Decodes `frame`'s payload for its type; unknown fields are kept aside, never an error.
    public init(frame: WireFrame) throws(WireFrameError) {
        self.requestID = frame.requestID
        let bytes = frame.payload.readableBytesView
        do {
            switch frame.type {
            case .hello: message = .hello(try WireHello(serializedBytes: Array(bytes)))
            case .helloAck: message = .helloAck(try WireHelloAck(serializedBytes: Array(bytes)))
            case .request: message = .request(try WireRequest(serializedBytes: Array(bytes)))
            case .response: message = .response(try WireResponse(serializedBytes: Array(bytes)))
            case .error: message = .error(try WireErrorResponse(serializedBytes: Array(bytes)))
            case .event: message = .event(try WireEvent(serializedBytes: Array(bytes)))
            case .heartbeat: message = .heartbeat(try WireHeartbeat(serializedBytes: Array(bytes)))
            case .heartbeatAck: message = .heartbeatAck(try WireHeartbeatAck(serializedBytes: Array(bytes)))
            case .goodbye: message = .goodbye(try WireGoodbye(serializedBytes: Array(bytes)))
            }
        } catch {
            throw .malformedPayload(type: frame.type, reason: "\(error)")
        }
    }

    /// Encodes this envelope as one frame.
    public func frame(allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> WireFrame {
        let bytes: [UInt8] = try message.serializedPayload()
        var payload = allocator.buffer(capacity: bytes.count)
        payload.writeBytes(bytes)
        return WireFrame(type: message.type, requestID: requestID, payload: payload)
    }

    /// Encodes this envelope straight into `out` (header + payload).
    public func write(to out: inout ByteBuffer, maxFrameSize: Int = WireFormat.defaultMaxFrameSize) throws {
        let bytes: [UInt8] = try message.serializedPayload()
        let frameSize = WireFormat.headerSize + bytes.count
        guard frameSize <= maxFrameSize else {
            throw WireFrameError.oversized(frameSize: frameSize, limit: maxFrameSize)
        }
        out.reserveCapacity(minimumWritableBytes: frameSize)
        out.writeInteger(WireFormat.magic)
        out.writeInteger(WireFormat.frameVersion)
        out.writeInteger(message.type.rawValue)
        out.writeInteger(UInt16(0))
        out.writeInteger(requestID)
        out.writeInteger(UInt32(bytes.count))
        out.writeBytes(bytes)
    }
}

/// Every message of the protocol, one case per frame type.
public enum WireMessage: Sendable, Equatable {
    case hello(WireHello)
    case helloAck(WireHelloAck)
    case request(WireRequest)
    case response(WireResponse)
    case error(WireErrorResponse)
    case event(WireEvent)
    case heartbeat(WireHeartbeat)
    case heartbeatAck(WireHeartbeatAck)
    case goodbye(WireGoodbye)

    /// The frame type that carries this message.
    public var type: WireMessageType {
        switch self {
        case .hello: .hello
        case .helloAck: .helloAck
        case .request: .request
        case .response: .response
        case .error: .error
        case .event: .event
        case .heartbeat: .heartbeat
        case .heartbeatAck: .heartbeatAck
        case .goodbye: .goodbye
        }
    }

    func serializedPayload() throws -> [UInt8] {
        switch self {
        case .hello(let m): try m.serializedBytes()
        case .helloAck(let m): try m.serializedBytes()
        case .request(let m): try m.serializedBytes()
        case .response(let m): try m.serializedBytes()
        case .error(let m): try m.serializedBytes()
        case .event(let m): try m.serializedBytes()
        case .heartbeat(let m): try m.serializedBytes()
        case .heartbeatAck(let m): try m.serializedBytes()
        case .goodbye(let m): try m.serializedBytes()
        }
    }
}
