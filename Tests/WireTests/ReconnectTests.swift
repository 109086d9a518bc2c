import Synchronization
import Testing
@testable import Wire

@Suite("Reconnect with backoff")
struct ReconnectTests {
    @Test("delays grow exponentially, stay within the jitter band and the cap", arguments: [1, 2, 3] as [UInt64])
    func backoffBounds(seed: UInt64) {
        var random = SplitMix(seed: seed)
        let backoff = WireBackoff(initial: .milliseconds(100), maximum: .seconds(5), multiplier: 2, jitter: 0.5)
        for attempt in 0..<20 {
            let ceiling = min(Duration.milliseconds(100) * (1 << min(attempt, 20)), .seconds(5))
            let delay = backoff.delay(attempt: attempt, using: &random)
            #expect(delay <= ceiling + .microseconds(1))
            #expect(delay >= ceiling / 2 - .microseconds(1))
        }
    }

    @Test("without jitter the sequence is exact")
    func backoffExact() {
        var random = SplitMix(seed: 0)
        let backoff = WireBackoff(initial: .milliseconds(10), maximum: .milliseconds(50), jitter: 0)
        let delays = (0..<5).map { backoff.delay(attempt: $0, using: &random) }
        #expect(delays == [.milliseconds(10), .milliseconds(20), .milliseconds(40), .milliseconds(50), .milliseconds(50)])
    }

    @Test("the node reconnects after the control daemon restarts on the same port")
    func reconnectAfterRestart() async throws {
        let events = Collector<String>()
        let port = Mutex(0)
        let reconnector = WireReconnector(backoff: WireBackoff(initial: .milliseconds(10), maximum: .milliseconds(100))) {
            try await dialer(.tcp(host: "127.0.0.1", port: port.withLock { $0 })).connect()
        }
        let running = Task {
            await reconnector.run(onEvent: { event in
                switch event {
                case .connected(let peer): events.add("connected \(peer.name)")
                case .disconnected: events.add("disconnected")
                case .failed: events.add("failed")
                }
            }) { connection in
                await connection.closed()
            }
        }
        defer { running.cancel() }
        @Sendable func awaitEvent(_ wanted: String) async throws {
            let stream = events.stream
            try await withDeadline(20, wanted) {
                for await event in stream where event == wanted { return }
            }
        }
        try await withServer { server in
            port.withLock { $0 = server.listener.port ?? 0 }
            try await awaitEvent("connected qarax-control")
            let accepted = try await server.connections.next("accepted")
            await server.listener.close()
            await accepted.close()
            try await awaitEvent("disconnected")
            try await awaitEvent("failed")
        }
        try await withServer(endpoint: .tcp(host: "127.0.0.1", port: port.withLock { $0 })) { server in
            try await awaitEvent("connected qarax-control")
            let accepted = try await server.connections.next("accepted after the restart")
            running.cancel()
            await accepted.close()
        }
    }
}
