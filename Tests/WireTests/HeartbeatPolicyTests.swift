import NIOCore
import Testing
@testable import Wire

/// A side heartbeats only when its inbound has been quiet for an interval: a chatty peer gets no
/// heartbeats, the quiet side's heartbeat (and its ack) keeps both sides' inbound alive.
@Suite("Heartbeat policy")
struct HeartbeatPolicyTests {
    @Test("due after (nearly) a whole quiet interval, not while frames keep arriving",
          arguments: [(0, false), (100, false), (899, false), (900, true), (1000, true), (2500, true)])
    func due(silentMs: Int64, expected: Bool) {
        #expect(WireConnectionHandler.heartbeatDue(silent: .milliseconds(silentMs), interval: .seconds(1)) == expected)
    }
}
