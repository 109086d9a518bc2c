import NIOCore
import NIOEmbedded
import NIOTestUtils
import SwiftProtobuf
import Testing
@testable import Wire

@Suite("Frame codec")
struct FrameCodecTests {
    @Test("every message survives encode → frame bytes → decode", arguments: Samples.messages)
    func roundTrip(message: WireMessage) throws {
        let envelope = WireEnvelope(requestID: 0xDEAD_BEEF_0000_0001, message)
        var bytes = ByteBuffer()
        try envelope.write(to: &bytes)
        let parsed = try WireFrameDecoder().parse(&bytes)
        let frame = try #require(parsed)
        #expect(bytes.readableBytes == 0)
        #expect(frame.type == message.type)
        #expect(try WireEnvelope(frame: frame) == envelope)
        #expect(try envelope.frame() == frame)
    }

    @Test("header bytes: magic, version, type, flags, request id, length, big-endian")
    func goldenHeader() throws {
        var beat = WireHeartbeat()
        beat.unixMs = 1
        var bytes = ByteBuffer()
        try WireEnvelope(requestID: 0x0102_0304_0506_0708, .heartbeat(beat)).write(to: &bytes)
        let expected: [UInt8] = [0x51, 0x58, 0x57, 0x52, 0x01, 0x07, 0x00, 0x00,
                                 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                 0x00, 0x00, 0x00, 0x02, 0x08, 0x01]
        #expect(Array(bytes.readableBytesView) == expected)
    }

    @Test("a stream of every message decodes fed at once, byte by byte and in every chunking (NIO verifier)")
    func verifier() throws {
        let (bytes, frames) = try Samples.stream()
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: [(bytes, frames)]) { WireFrameDecoder() }
    }

    @Test("seeded random chunkings and shuffled frame orders decode to the same frames", arguments: 0..<16)
    func shuffledChunks(seed: UInt64) throws {
        var random = SplitMix(seed: seed)
        let (_, frames) = try Samples.stream()
        let shuffled = frames.shuffled(using: &random)
        var stream = ByteBuffer()
        for frame in shuffled { try WireFrameEncoder.write(frame, to: &stream) }
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
        while stream.readableBytes > 0 {
            let size = min(stream.readableBytes, Int.random(in: 1...300, using: &random))
            let chunk = stream.readSlice(length: size)
            try channel.writeInbound(try #require(chunk))
        }
        var decoded: [WireFrame] = []
        while let frame = try channel.readInbound(as: WireFrame.self) { decoded.append(frame) }
        #expect(decoded == shuffled)
        #expect(try channel.finish().isClean)
    }

    static let header: [UInt8] = [0x51, 0x58, 0x57, 0x52, 0x01, 0x07, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]

    static let badHeaders: [([UInt8], WireFrameError)] = {
        let zeros = [UInt8](repeating: 0, count: 14)
        let http: [UInt8] = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let version2: [UInt8] = [0x51, 0x58, 0x57, 0x52, 0x02, 0x07] + zeros
        let type238: [UInt8] = [0x51, 0x58, 0x57, 0x52, 0x01, 0xEE] + zeros
        let type0: [UInt8] = [0x51, 0x58, 0x57, 0x52, 0x01, 0x00] + zeros
        let oneMiB: [UInt8] = header + [0x00, 0x10, 0x00, 0x00]
        let huge: [UInt8] = header + [0xFF, 0xFF, 0xFF, 0xFF]
        return [
            (http, .badMagic(found: 0x4745_5420)),
            (version2, .unsupportedVersion(2)),
            (type238, .unknownMessageType(0xEE)),
            (type0, .unknownMessageType(0)),
            (oneMiB, .oversized(frameSize: 20 + (1 << 20), limit: 1 << 20)),
            (huge, .oversized(frameSize: 20 + 0xFFFF_FFFF, limit: 1 << 20)),
        ]
    }()

    @Test("bad header fields fail with a precise error as soon as the header is in", arguments: badHeaders)
    func badHeader(bytes: [UInt8], error: WireFrameError) throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
        #expect(throws: error) { try channel.writeInbound(ByteBuffer(bytes: bytes)) }
        _ = try? channel.finish()
    }

    @Test("a wrong first byte is refused at once, without waiting for a whole header")
    func magicByteByByte() throws {
        let decoder = WireFrameDecoder()
        var good = ByteBuffer(bytes: [0x51, 0x58, 0x57] as [UInt8])
        #expect(try decoder.parse(&good) == nil)
        var bad = ByteBuffer(bytes: [0x16, 0x03, 0x01] as [UInt8])
        #expect(throws: WireFrameError.badMagic(found: 0x1603_0100)) { try decoder.parse(&bad) }
        var late = ByteBuffer(bytes: [0x51, 0x58, 0x00] as [UInt8])
        #expect(throws: WireFrameError.badMagic(found: 0x5158_0000)) { try decoder.parse(&late) }
    }

    @Test("an oversized frame is refused from its header alone: nothing of the payload is waited for")
    func oversizedBeforeBuffering() throws {
        let decoder = WireFrameDecoder(maxFrameSize: 64)
        var buffer = ByteBuffer(bytes: Self.header + [0, 0, 0, 45] as [UInt8])
        #expect(throws: WireFrameError.oversized(frameSize: 65, limit: 64)) { try decoder.parse(&buffer) }
        var fits = ByteBuffer(bytes: Self.header + [0, 0, 0, 44] as [UInt8])
        #expect(try decoder.parse(&fits) == nil)
    }

    @Test("the encoder refuses to send a frame above the limit")
    func encoderLimit() throws {
        let frame = WireFrame(type: .event, payload: ByteBuffer(repeating: 0, count: 100))
        var out = ByteBuffer()
        #expect(throws: WireFrameError.oversized(frameSize: 120, limit: 119)) {
            try WireFrameEncoder.write(frame, to: &out, maxFrameSize: 119)
        }
        #expect(out.readableBytes == 0)
    }

    @Test("a stream ending inside a frame is a truncation error", arguments: [1, 19, 20, 25])
    func truncated(length: Int) throws {
        var beat = WireHeartbeat()
        beat.unixMs = 123_456_789
        var bytes = ByteBuffer()
        try WireEnvelope(.heartbeat(beat)).write(to: &bytes)
        let total = bytes.readableBytes
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
        try channel.writeInbound(bytes.getSlice(at: 0, length: min(length, total - 1)))
        let needed = length < 20 ? 20 : total
        #expect(throws: WireFrameError.truncated(buffered: min(length, total - 1), needed: needed)) {
            try channel.finish()
        }
    }

    @Test("a payload that is not the message its type names is a malformed-payload error")
    func malformedPayload() {
        let frame = WireFrame(type: .hello, payload: ByteBuffer(bytes: [0x0A, 0xFF]))
        #expect {
            try WireEnvelope(frame: frame)
        } throws: { error in
            guard case WireFrameError.malformedPayload(let type, _) = error else { return false }
            return type == .hello
        }
    }

    @Test("unknown fields from a newer peer are skipped and known fields still read")
    func unknownFieldsSkipped() throws {
        var hello = WireHandshake.hello(from: WireLocalIdentity(role: .node, name: "node-1"))
        var bytes: [UInt8] = try hello.serializedBytes()
        // field 99 (varint) = 300 and field 100 (length-delimited) = "future": unknown to this version.
        bytes += [0x98, 0x06, 0xAC, 0x02, 0xA2, 0x06, 0x06] + Array("future".utf8)
        let decoded = try WireEnvelope(frame: WireFrame(type: .hello, payload: ByteBuffer(bytes: bytes)))
        guard case .hello(let read) = decoded.message else {
            Issue.record("decoded \(decoded.message.type)")
            return
        }
        #expect(read.name == "node-1")
        #expect(read.role == .node)
        hello.unknownFields = read.unknownFields
        #expect(read == hello)
    }

    @Test("an operation added by a newer peer decodes as a request with no known operation")
    func unknownOperation() throws {
        // Request field 42 (a future operation) holding an empty message.
        let frame = WireFrame(type: .request, requestID: 9, payload: ByteBuffer(bytes: [0xD2, 0x02, 0x00]))
        guard case .request(let request) = try WireEnvelope(frame: frame).message else {
            Issue.record("not a request")
            return
        }
        #expect(request.op == nil)
    }
}

/// A small seeded generator so shuffles and chunkings are reproducible.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
