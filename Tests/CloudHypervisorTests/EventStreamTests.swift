import NodeCore
import Testing

/// Events exactly as cloud-hypervisor writes them: serde's pretty printer, a blank line after each.
let sampleStream = """
{
  "timestamp": {
    "secs": 0,
    "nanos": 1234
  },
  "source": "vmm",
  "event": "starting",
  "properties": null
}

{
  "timestamp": {
    "secs": 0,
    "nanos": 5812000
  },
  "source": "vm",
  "event": "booting",
  "properties": null
}

{
  "timestamp": {
    "secs": 0,
    "nanos": 6400000
  },
  "source": "vm",
  "event": "booted",
  "properties": null
}

{
  "timestamp": {
    "secs": 2,
    "nanos": 1
  },
  "source": "virtio-device",
  "event": "activated",
  "properties": {
    "id": "_net0"
  }
}

{
  "timestamp": {
    "secs": 3,
    "nanos": 0
  },
  "source": "guest",
  "event": "panic",
  "properties": {
    "note": "a } and a \\" and a { inside a string"
  }
}

{
  "timestamp": {
    "secs": 4,
    "nanos": 0
  },
  "source": "vm",
  "event": "snapshotted",
  "properties": null
}

{
  "timestamp": {
    "secs": 5,
    "nanos": 999999999
  },
  "source": "vmm",
  "event": "shutdown",
  "properties": null
}


"""

/// A small deterministic generator, so a failing split can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("event stream parser")
struct EventStreamTests {
    static let expected: [CHEvent] = [
        CHEvent(timestamp: .nanoseconds(1234), source: "vmm", event: "starting"),
        CHEvent(timestamp: .nanoseconds(5_812_000), source: "vm", event: "booting"),
        CHEvent(timestamp: .nanoseconds(6_400_000), source: "vm", event: "booted"),
        CHEvent(timestamp: .seconds(2) + .nanoseconds(1), source: "virtio-device", event: "activated", properties: ["id": "_net0"]),
        CHEvent(timestamp: .seconds(3), source: "guest", event: "panic", properties: ["note": #"a } and a " and a { inside a string"#]),
        CHEvent(timestamp: .seconds(4), source: "vm", event: "snapshotted"),
        CHEvent(timestamp: .seconds(5) + .nanoseconds(999_999_999), source: "vmm", event: "shutdown"),
    ]

    @Test func allAtOnce() throws {
        var parser = CHEventParser()
        #expect(try parser.feed(Array(sampleStream.utf8)) == Self.expected)
        try parser.finish()
    }

    @Test func oneByteAtATime() throws {
        var parser = CHEventParser()
        var events: [CHEvent] = []
        for byte in sampleStream.utf8 { events += try parser.feed([byte]) }
        try parser.finish()
        #expect(events == Self.expected)
    }

    @Test(arguments: [1, 2, 3, 42, 4711, 0xC0FFEE])
    func randomSplits(seed: UInt64) throws {
        var rng = SplitMix64(state: seed)
        let bytes = Array(sampleStream.utf8)
        var parser = CHEventParser()
        var events: [CHEvent] = []
        var i = 0
        while i < bytes.count {
            let n = Int.random(in: 1...97, using: &rng)
            events += try parser.feed(bytes[i..<min(i + n, bytes.count)])
            i += n
        }
        try parser.finish()
        #expect(events == Self.expected)
    }

    @Test func kindsMapTheKnownEvents() {
        #expect(Self.expected.map(\.kind) == [.vmmStarting, .vmBooting, .vmBooted, .deviceActivated, .guestPanic,
                                              .other("vm/snapshotted"), .vmmShutdown])
        let pairs: [(String, String, CHEvent.Kind)] = [
            ("vm", "pausing", .vmPausing), ("vm", "paused", .vmPaused), ("vm", "resuming", .vmResuming),
            ("vm", "resumed", .vmResumed), ("vm", "shutdown", .vmShutdown), ("vm", "deleted", .vmDeleted),
            ("vm", "rebooting", .vmRebooting), ("vm", "rebooted", .vmRebooted),
        ]
        for (source, event, kind) in pairs { #expect(CHEvent.Kind(source: source, event: event) == kind) }
    }

    @Test func compactObjectsOnOneLineParseToo() throws {
        var parser = CHEventParser()
        let line = #"{"timestamp":{"secs":1,"nanos":2},"source":"vm","event":"paused","properties":null}{"timestamp":{"secs":1,"nanos":3},"source":"vm","event":"resumed"}"#
        #expect(try parser.feed(Array(line.utf8)).map(\.kind) == [.vmPaused, .vmResumed])
    }

    @Test func anObjectOverTheCapIsAnError() {
        var parser = CHEventParser(maxEventBytes: 64)
        let big = #"{"timestamp":{"secs":1,"nanos":2},"source":"vm","event":"\#(String(repeating: "x", count: 100))"}"#
        #expect(throws: CHEventStreamError.objectTooLarge(limit: 64)) { _ = try parser.feed(Array(big.utf8)) }
    }

    @Test func bytesOutsideObjectsAreAnError() {
        var parser = CHEventParser()
        #expect(throws: CHEventStreamError.unexpectedByte(UInt8(ascii: "x"), offset: 2)) { _ = try parser.feed(Array("\n\nx{}".utf8)) }
    }

    @Test func anObjectThatIsNotAnEventIsAnError() {
        var parser = CHEventParser()
        #expect(throws: CHEventStreamError.self) { _ = try parser.feed(Array(#"{"source":"vm"}"#.utf8)) }
    }

    @Test func endingInsideAnObjectIsTruncated() throws {
        var parser = CHEventParser()
        let bytes = Array(sampleStream.utf8)
        #expect(try parser.feed(bytes[0..<40]).isEmpty)
        #expect(throws: CHEventStreamError.truncated(bytes: 40)) { try parser.finish() }
    }
}
