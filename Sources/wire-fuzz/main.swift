// A seeded mutation fuzzer over the Wire frame decoder and message decoding. Run by hand (never by
// `swift test`): `swift run wire-fuzz [--iterations N] [--seed S]`. Exits non-zero on a broken
// invariant; a crash is a failure too. Prints outcome counts and the peak resident memory.
import Foundation
import NIOCore
import Wire

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func argument(_ name: String, default value: UInt64) -> UInt64 {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count,
          let parsed = UInt64(arguments[index + 1]) else { return value }
    return parsed
}

func residentKiB() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }
    return -1
}

func fail(_ message: String, input: [UInt8]) -> Never {
    let hex = input.map { String($0, radix: 16) }.joined(separator: " ")
    FileHandle.standardError.write(Data("wire-fuzz: INVARIANT BROKEN: \(message)\ninput: \(hex)\n".utf8))
    exit(1)
}

/// Valid frames of every message type: the seeds mutations start from.
func seeds() throws -> [[UInt8]] {
    var node = WireNodeInventory()
    node.hostname = "host-a"
    node.cpus = 2
    node.memoryBytes = 24 << 30
    var pool = WireHugepagePool()
    pool.pageSizeBytes = 2 << 20
    pool.total = 512
    node.hugepages = [pool]
    node.macvtapParents = ["eth0"]
    let hello = WireHandshake.hello(from: WireLocalIdentity(role: .node, name: "node-1", capabilities: ["events"],
                                                            node: node, softwareVersion: "0.1.0"))
    var ack = WireHelloAck()
    ack.protocolVersion = 1
    ack.name = "qarax-control"
    var create = WireCreateVM()
    create.specJson = Data(#"{"name":"web","cpus":{"bootVCPUs":1}}"#.utf8)
    var request = WireRequest()
    request.op = .create(create)
    var status = WireVMStatus()
    status.id = "vm-1"
    status.state = .running
    var response = WireResponse()
    response.result = .vm(status)
    var report = WireVMInventoryReport()
    report.vms = [status, status]
    var event = WireEvent()
    event.sequence = 3
    event.kind = .inventory(report)
    var beat = WireHeartbeat()
    beat.unixMs = 1_700_000_000_000
    var goodbye = WireGoodbye()
    goodbye.reason = WireErrorMapping.make(.protocol, "bad magic", field: "header")
    let messages: [WireMessage] = [.hello(hello), .helloAck(ack), .request(request), .response(response),
                                   .error(WireErrorMapping.make(.notFound, "no VM web", field: "vm")),
                                   .event(event), .heartbeat(beat), .heartbeatAck(WireHeartbeatAck()),
                                   .goodbye(goodbye)]
    return try messages.enumerated().map { index, message in
        var buffer = ByteBuffer()
        try WireEnvelope(requestID: UInt64(index), message).write(to: &buffer)
        return Array(buffer.readableBytesView)
    }
}

func mutate(_ input: [UInt8], pool: [[UInt8]], random: inout SplitMix) -> [UInt8] {
    var bytes = input
    for _ in 0..<Int.random(in: 1...4, using: &random) {
        switch Int.random(in: 0..<9, using: &random) {
        case 0 where !bytes.isEmpty:  // flip a bit
            let index = Int.random(in: 0..<bytes.count, using: &random)
            bytes[index] ^= 1 << UInt8.random(in: 0..<8, using: &random)
        case 1 where !bytes.isEmpty:  // an interesting byte value
            let index = Int.random(in: 0..<bytes.count, using: &random)
            bytes[index] = [0, 0xFF, 0x7F, 0x80, 0x01, 0x0A, 0x12][Int.random(in: 0..<7, using: &random)]
        case 2:  // insert random bytes
            let index = Int.random(in: 0...bytes.count, using: &random)
            bytes.insert(contentsOf: (0..<Int.random(in: 1...16, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }, at: index)
        case 3 where bytes.count > 1:  // delete a range
            let start = Int.random(in: 0..<bytes.count, using: &random)
            let end = min(bytes.count, start + Int.random(in: 1...16, using: &random))
            bytes.removeSubrange(start..<end)
        case 4 where bytes.count >= 20:  // rewrite the length field
            let length = [0, 1, 19, 20, UInt32(bytes.count - 20), UInt32(bytes.count), 0xFFFF, 0x10_0000, 0xFFFF_FFFF,
                          UInt32.random(in: 0...0xFFFF_FFFF, using: &random)][Int.random(in: 0..<10, using: &random)]
            bytes.replaceSubrange(16..<20, with: withUnsafeBytes(of: length.bigEndian, Array.init))
        case 5 where bytes.count >= 6:  // another message type
            bytes[5] = UInt8.random(in: 0...12, using: &random)
        case 6:  // splice with another seed
            let other = pool[Int.random(in: 0..<pool.count, using: &random)]
            let cut = Int.random(in: 0...bytes.count, using: &random)
            let otherCut = Int.random(in: 0...other.count, using: &random)
            bytes = Array(bytes[..<cut]) + Array(other[otherCut...])
        case 7:  // truncate
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
        default:  // append a whole valid frame (streams of several frames)
            bytes += pool[Int.random(in: 0..<pool.count, using: &random)]
        }
    }
    return Array(bytes.prefix(8192))
}

func label(_ error: WireFrameError) -> String {
    switch error {
    case .badMagic: "bad-magic"
    case .unsupportedVersion: "unsupported-version"
    case .unknownMessageType: "unknown-message-type"
    case .oversized: "oversized"
    case .truncated: "truncated"
    case .malformedPayload: "malformed-payload"
    }
}

let iterations = argument("--iterations", default: 1_000_000)
let seed = argument("--seed", default: 0x5158_5752)
let maxFrameSize = 4096
let decoder = WireFrameDecoder(maxFrameSize: maxFrameSize)
let pool = try seeds()
var random = SplitMix(state: seed)
var outcomes: [String: Int] = [:]
var frames = 0
var peakRSS = residentKiB()
let startRSS = peakRSS
let start = ContinuousClock.now

for iteration in 0..<iterations {
    let input = mutate(pool[Int.random(in: 0..<pool.count, using: &random)], pool: pool, random: &random)
    // Feed the input in random chunks, as a socket would deliver it.
    var buffer = ByteBuffer()
    var offset = 0
    var outcome = "needs-more-data"
    feeding: while offset < input.count {
        let chunk = min(input.count - offset, Int.random(in: 1...512, using: &random))
        buffer.writeBytes(input[offset..<(offset + chunk)])
        offset += chunk
        while true {
            let frame: WireFrame?
            do {
                frame = try decoder.parse(&buffer)
            } catch {
                outcome = label(error)
                break feeding
            }
            guard let frame else { break }
            frames += 1
            if WireFormat.headerSize + frame.payload.readableBytes > maxFrameSize {
                fail("a frame above the limit was returned", input: input)
            }
            do {
                let envelope = try WireEnvelope(frame: frame)
                let again = try WireEnvelope(frame: envelope.frame())
                if again != envelope { fail("decode → encode → decode changed the message", input: input) }
                outcome = "decoded"
            } catch let error as WireFrameError {
                if case .malformedPayload = error { outcome = "malformed-payload" } else {
                    fail("unexpected error \(error)", input: input)
                }
            } catch {
                fail("re-encoding a decoded message failed: \(error)", input: input)
            }
        }
        if buffer.readableBytes > maxFrameSize {
            fail("\(buffer.readableBytes) bytes buffered, above the frame limit", input: input)
        }
    }
    outcomes[outcome, default: 0] += 1
    if iteration % 100_000 == 0 { peakRSS = max(peakRSS, residentKiB()) }
}
peakRSS = max(peakRSS, residentKiB())
let elapsed = start.duration(to: .now)
print("wire-fuzz: \(iterations) inputs, seed \(seed), \(frames) frames decoded, \(elapsed) elapsed")
for (outcome, count) in outcomes.sorted(by: { $0.value > $1.value }) {
    print("  \(outcome): \(count)")
}
print("  resident memory: \(startRSS) KiB at start, \(peakRSS) KiB peak")
