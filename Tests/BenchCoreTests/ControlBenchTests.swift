@testable import ControlBench
import ControlCore
import Foundation
import Testing

/// The event-lag histogram as the control daemon exports it and the harness reads it back.
@Suite("Control bench: lag histogram")
struct LagHistogramTests {
    @Test("Prometheus text round-trips and quantiles fall in the right bucket")
    func roundTrip() throws {
        let histogram = LatencyHistogram()
        for _ in 0..<90 { histogram.record(seconds: 0.0003) }   // 200–500 µs bucket
        for _ in 0..<10 { histogram.record(seconds: 0.03) }     // 20–50 ms bucket
        histogram.record(seconds: -1)                            // clock offset: counts as 0
        let text = histogram.prometheus(name: "qarax_node_event_lag_seconds", help: "test")
        #expect(text.contains("qarax_node_event_lag_seconds_count 101"))
        #expect(text.contains("qarax_node_event_lag_seconds_bucket{le=\"+Inf\"} 101"))
        let parsed = LagHistogram(prometheus: text)
        #expect(parsed.buckets.count == LatencyHistogram.bounds.count + 1)
        let stats = try #require(parsed.percentiles)
        #expect(stats.samples == 101)
        #expect(stats.p50 > 0.2 && stats.p50 <= 0.5, "p50 \(stats.p50) ms")
        #expect(stats.p99 > 20 && stats.p99 <= 50, "p99 \(stats.p99) ms")
    }

    @Test("A window is the difference of two scrapes")
    func window() throws {
        let histogram = LatencyHistogram()
        for _ in 0..<50 { histogram.record(seconds: 0.03) }
        let before = LagHistogram(prometheus: histogram.prometheus(name: "qarax_node_event_lag_seconds", help: ""))
        for _ in 0..<20 { histogram.record(seconds: 0.00001) }
        let after = LagHistogram(prometheus: histogram.prometheus(name: "qarax_node_event_lag_seconds", help: ""))
        let stats = try #require(LagHistogram.difference(after, before).percentiles)
        #expect(stats.samples == 20)
        #expect(stats.p99 <= 0.01, "only the window's 10 µs observations: p99 \(stats.p99) ms")
        #expect(LagHistogram(prometheus: "").percentiles == nil)
    }
}

/// The harness for real, small: five simulated nodes over mutual TLS against the real
/// qarax-control and the discard server, each with heartbeats, API load and a restart.
@Suite("qarax-bench control, for real", .serialized)
struct ControlBenchRunTests {
    @Test("Both servers: every phase runs, every API call succeeds, every node comes back")
    func smallFleet() async throws {
        let scratch = NSTemporaryDirectory() + "qarax-control-bench-test-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var options = ControlBenchOptions(controlBinary: BenchEnvironment.product("qarax-control"),
                                          benchBinary: BenchEnvironment.product("qarax-bench"),
                                          pkiDirectory: scratch + "/pki", scratchDirectory: scratch + "/runs")
        options.nodeCounts = [5]
        options.beatInterval = .milliseconds(250)
        options.wireHeartbeatInterval = .milliseconds(200)
        options.steady = .seconds(1)
        options.apiRate = 40
        options.apiDuration = .milliseconds(1500)
        options.apiUsers = 2
        options.settleTimeout = .seconds(60)
        #expect(options.problems().isEmpty, "\(options.problems())")
        let runs = try await ControlBench(options: options, progress: { _ in }).run()
        #expect(Set(runs.map(\.target)) == [.qarax, .discard])
        for run in runs {
            let name = run.target.rawValue
            #expect(run.nodes == 5)
            #expect(run.beatsPerSecond > 0, "\(name): no beats")
            #expect((run.heartbeatRoundTripMs?.samples ?? 0) > 0, "\(name): no heartbeat round trips")
            #expect((run.eventLagMs?.samples ?? 0) > 0, "\(name): the server recorded no event lag")
            #expect(run.disconnectsOutsideRestart == 0, "\(name): links dropped under load")
            #expect(run.reconnectSeconds != nil, "\(name): the restart phase did not run")
            let api = try #require(run.api, "\(name): no API phase")
            #expect(api.firstError == nil, "\(name): \(api.firstError ?? "")")
            #expect(api.dropped == 0, "\(name): \(api.dropped) requests never sent")
            #expect(Set(api.routes.map(\.route)) == ["POST /v1/vms", "POST /v1/vms/{id}/start", "POST /v1/vms/{id}/stop",
                                                     "GET /v1/vms/{id}", "DELETE /v1/vms/{id}"], "\(name)")
            #expect(api.routes.allSatisfy { $0.count > 0 && $0.errors == 0 }, "\(name): \(api.routes)")
        }
        let report = ControlReport(runs: runs, host: "test", tls: true, beatInterval: options.beatInterval, apiRate: 40)
        #expect(report.markdown().contains("| qarax-control | 5 |"))
        #expect(report.verdict.first?.contains("10000 nodes were not measured") == true)
    }

    @Test("Bad options are named")
    func problems() {
        var options = ControlBenchOptions(controlBinary: "/nonexistent/qarax-control", benchBinary: "/bin/true",
                                          pkiDirectory: "/tmp", scratchDirectory: "/tmp")
        options.nodeCounts = [0]
        options.jitter = 2
        let problems = options.problems()
        #expect(problems.contains { $0.hasPrefix("--nodes") })
        #expect(problems.contains { $0.hasPrefix("--jitter") })
        #expect(problems.contains { $0.hasPrefix("--control-binary") })
    }
}
