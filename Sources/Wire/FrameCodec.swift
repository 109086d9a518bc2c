public import NIOCore

/// Splits a byte stream into `WireFrame`s. The magic is checked byte by byte as it arrives and the
/// rest of the header as soon as its 20 bytes are in, so a bad magic, version, type or an oversized
/// length fails before any payload is buffered.
public struct WireFrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = WireFrame

    /// The largest frame accepted, header included.
    public let maxFrameSize: Int

    public init(maxFrameSize: Int = WireFormat.defaultMaxFrameSize) {
        precondition(maxFrameSize >= WireFormat.headerSize, "a frame limit below the header size admits nothing")
        self.maxFrameSize = maxFrameSize
    }

    /// Parses one frame from the front of `buffer`, consuming it; `nil` when more bytes are needed.
    public func parse(_ buffer: inout ByteBuffer) throws(WireFrameError) -> WireFrame? {
        let start = buffer.readerIndex
        guard buffer.readableBytes >= WireFormat.headerSize else {
            try checkMagicPrefix(buffer)
            return nil
        }
        guard let magic = buffer.getInteger(at: start, as: UInt32.self),
              let version = buffer.getInteger(at: start + 4, as: UInt8.self),
              let rawType = buffer.getInteger(at: start + 5, as: UInt8.self),
              let flags = buffer.getInteger(at: start + 6, as: UInt16.self),
              let requestID = buffer.getInteger(at: start + 8, as: UInt64.self),
              let length = buffer.getInteger(at: start + 16, as: UInt32.self)
        else { return nil }
        guard magic == WireFormat.magic else { throw .badMagic(found: magic) }
        guard version == WireFormat.frameVersion else { throw .unsupportedVersion(version) }
        guard let type = WireMessageType(rawValue: rawType) else { throw .unknownMessageType(rawType) }
        let frameSize = WireFormat.headerSize + Int(length)
        guard frameSize <= maxFrameSize else { throw .oversized(frameSize: frameSize, limit: maxFrameSize) }
        guard buffer.readableBytes >= frameSize else { return nil }
        buffer.moveReaderIndex(forwardBy: WireFormat.headerSize)
        guard let payload = buffer.readSlice(length: Int(length)) else { return nil }
        return WireFrame(type: type, flags: flags, requestID: requestID, payload: payload)
    }

    /// Fails as soon as the bytes received so far diverge from the magic, so a peer speaking another
    /// protocol (a short HTTP request, a TLS ClientHello on a plaintext port) is told at once.
    private func checkMagicPrefix(_ buffer: ByteBuffer) throws(WireFrameError) {
        let available = min(buffer.readableBytes, 4)
        guard available > 0, let prefix = buffer.getBytes(at: buffer.readerIndex, length: available) else { return }
        var found: UInt32 = 0
        for (index, byte) in prefix.enumerated() { found |= UInt32(byte) << (24 - 8 * index) }
        let expected = (WireFormat.magic >> (32 - 8 * available)) << (32 - 8 * available)
        guard found == expected else { throw .badMagic(found: found) }
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try parse(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer,
                                    seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            let needed: Int
            if let length = buffer.getInteger(at: buffer.readerIndex + 16, as: UInt32.self) {
                needed = WireFormat.headerSize + Int(length)
            } else {
                needed = WireFormat.headerSize
            }
            let buffered = buffer.readableBytes
            buffer.moveReaderIndex(to: buffer.writerIndex)
            throw WireFrameError.truncated(buffered: buffered, needed: needed)
        }
        return .needMoreData
    }
}

/// Writes `WireFrame`s as header + payload; refuses a frame above the limit the peer enforces.
public struct WireFrameEncoder: MessageToByteEncoder, Sendable {
    public typealias OutboundIn = WireFrame

    public let maxFrameSize: Int

    public init(maxFrameSize: Int = WireFormat.defaultMaxFrameSize) {
        self.maxFrameSize = maxFrameSize
    }

    public func encode(data frame: WireFrame, out: inout ByteBuffer) throws {
        try Self.write(frame, to: &out, maxFrameSize: maxFrameSize)
    }

    /// Appends `frame` to `out`.
    public static func write(_ frame: WireFrame, to out: inout ByteBuffer,
                             maxFrameSize: Int = WireFormat.defaultMaxFrameSize) throws(WireFrameError) {
        let frameSize = WireFormat.headerSize + frame.payload.readableBytes
        guard frameSize <= maxFrameSize else { throw .oversized(frameSize: frameSize, limit: maxFrameSize) }
        out.reserveCapacity(minimumWritableBytes: frameSize)
        out.writeInteger(WireFormat.magic)
        out.writeInteger(WireFormat.frameVersion)
        out.writeInteger(frame.type.rawValue)
        out.writeInteger(frame.flags)
        out.writeInteger(frame.requestID)
        out.writeInteger(UInt32(frame.payload.readableBytes))
        var payload = frame.payload
        out.writeBuffer(&payload)
    }
}
