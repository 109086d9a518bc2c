import BenchCore
import Testing

@Suite("Phase bookkeeping: timelines, phases, order, markers")
struct PhaseTests {
    static let sample = BootSample(points: [
        .requestReceived: 0, .specValidated: 0.2, .hostPrepared: 3, .vmmSpawned: 10, .apiReady: 12,
        .created: 15, .guestBooted: 17, .bootReturned: 18, .readyMarker: 20, .shutdownComplete: 25,
    ])

    @Test("Phases follow time order, are named after their end and add up to the last point")
    func phases() {
        let phases = Self.sample.phases
        #expect(phases.map(\.0) == [.specValidated, .hostPrepared, .vmmSpawned, .apiReady, .created, .guestBooted,
                                    .bootReturned, .readyMarker, .shutdownComplete])
        #expect(phases.allSatisfy { $0.1 >= 0 })
        #expect(abs(phases.reduce(0) { $0 + $1.1 } - 25) < 1e-9)
        #expect(Self.sample.bootMilliseconds == 20)
        #expect(Self.sample.outOfOrder.isEmpty)
    }

    @Test("A node step before its predecessor, or an observation outside the VMM's life, is out of order")
    func outOfOrder() {
        var sample = Self.sample
        sample.points[.created] = 11
        #expect(sample.outOfOrder == [.created])
        var early = Self.sample
        early.points[.readyMarker] = 5
        #expect(early.outOfOrder == [.readyMarker])
        var late = Self.sample
        late.points[.guestBooted] = 30
        #expect(late.outOfOrder == [.guestBooted])
        var shutdownFirst = Self.sample
        shutdownFirst.points[.bootReturned] = 26
        #expect(shutdownFirst.outOfOrder.isEmpty, "the VMM may end before vm.boot's answer reaches the node")
        var shutdownEarly = Self.sample
        shutdownEarly.points[.shutdownComplete] = 14
        #expect(shutdownEarly.outOfOrder.contains(.shutdownComplete))
    }

    @Test("A timeline keeps each point's first time and starts at the request")
    func timeline() {
        let start = ContinuousClock.now
        let timeline = BootTimeline(start: start)
        timeline.mark(.vmmSpawned, at: start + .milliseconds(5))
        timeline.mark(.vmmSpawned, at: start + .milliseconds(9))
        timeline.mark(.debugPort, offsetMilliseconds: 7.5)
        #expect(timeline.sample.points == [.requestReceived: 0, .vmmSpawned: 5, .debugPort: 7.5])
        #expect(BootTimeline.milliseconds(.microseconds(1500)) == 1.5)
    }

    @Test("The ready marker is found whole, byte by byte, or split across chunks", arguments: [1, 3, 7, 64])
    func marker(chunk: Int) {
        let stream = Array("noise QARAX-GUEST-RE\nQARAX-GUEST-READY\nafter QARAX-GUEST-READY".utf8)
        var scanner = MarkerScanner("QARAX-GUEST-READY")
        var hits = 0
        var offset = 0
        var endOfHit = -1
        while offset < stream.count {
            let end = min(offset + chunk, stream.count)
            let hit = stream[offset..<end].withUnsafeBytes { scanner.feed($0) }
            if hit { hits += 1; endOfHit = end }
            offset = end
        }
        #expect(hits == 1)
        #expect(scanner.found)
        let firstEnd = 21 + 17
        #expect(endOfHit >= firstEnd && endOfHit < firstEnd + chunk)
    }

    @Test("No marker, no hit")
    func noMarker() {
        var scanner = MarkerScanner("QARAX-GUEST-READY")
        let hit = Array("QARAX-GUEST-REAX".utf8).withUnsafeBytes { scanner.feed($0) }
        #expect(!hit && !scanner.found)
    }

    @Test("cloud-hypervisor's debug-port lines give the first write's offset")
    func debugPort() {
        let log = """
        cloud-hypervisor: 1.2ms: <vmm> INFO:vmm/src/lib.rs:1: API server started
        cloud-hypervisor: 5.1ms: <vcpu0> INFO:devices/src/legacy/debug_port.rs:73: [Firmware code 0x1] 0.004961 seconds
        cloud-hypervisor: 6.0ms: <vcpu0> INFO:devices/src/legacy/debug_port.rs:73: [Kernel code 0x41] 0.006000 seconds
        """
        #expect(DebugPortLog.firstWriteSeconds(in: log) == 0.004961)
        #expect(DebugPortLog.firstWriteSeconds(in: "no such line") == nil)
    }
}
