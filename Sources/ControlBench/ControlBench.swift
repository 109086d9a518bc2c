import ClusterPKI
import Foundation
import NIOCore
import Synchronization
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// What the server under load is.
public enum ControlTarget: String, Sendable, Codable, CaseIterable {
    /// The real `qarax-control serve`.
    case qarax = "qarax-control"
    /// The discard server on the same stack (the baseline).
    case discard = "discard"
}

/// Settings of `qarax-bench control`.
public struct ControlBenchOptions: Sendable {
    public var nodeCounts: [Int] = [100, 1000, 10_000]
    public var targets: [ControlTarget] = [.discard, .qarax]
    /// `qarax-control` and `qarax-bench` (for the discard server) executables.
    public var controlBinary: String
    public var benchBinary: String
    public var tls = true
    /// CA and node certificates, kept between runs (issuing 10,000 takes a while).
    public var pkiDirectory: String
    public var scratchDirectory: String
    public var beatInterval: Duration = .seconds(1)
    public var wireHeartbeatInterval: Duration = .seconds(5)
    public var jitter = 0.2
    /// New node connections per second while the fleet ramps up.
    public var connectRate = 1000
    /// Heartbeats only, measured.
    public var steady: Duration = .seconds(20)
    /// API requests per second and for how long (0 skips the API phase).
    public var apiRate: Double = 1000
    public var apiDuration: Duration = .seconds(10)
    public var apiUsers = 32
    public var restart = true
    /// Longest wait for a fleet to connect or reconnect.
    public var settleTimeout: Duration = .seconds(180)

    public init(controlBinary: String, benchBinary: String, pkiDirectory: String, scratchDirectory: String) {
        self.controlBinary = controlBinary
        self.benchBinary = benchBinary
        self.pkiDirectory = pkiDirectory
        self.scratchDirectory = scratchDirectory
    }

    /// Every problem with the settings, each naming its option.
    public func problems() -> [String] {
        var problems: [String] = []
        if nodeCounts.isEmpty || nodeCounts.contains(where: { $0 < 1 }) { problems.append("--nodes: each count must be at least 1") }
        if targets.isEmpty { problems.append("--targets: name at least one of qarax-control, discard") }
        if !(0...0.9).contains(jitter) { problems.append("--jitter: \(jitter) is not within 0…0.9") }
        if beatInterval <= .zero { problems.append("--beat-interval: must be positive") }
        if wireHeartbeatInterval <= .zero { problems.append("--wire-heartbeat: must be positive") }
        if connectRate < 1 { problems.append("--connect-rate: \(connectRate) is below 1") }
        if apiRate < 0 { problems.append("--api-rate: \(apiRate) is negative") }
        if apiUsers < 1 { problems.append("--api-users: \(apiUsers) is below 1") }
        for (option, path) in [("--control-binary", controlBinary), ("--bench-binary", benchBinary)]
        where !FileManager.default.isExecutableFile(atPath: path) {
            problems.append("\(option): \(path) is not an executable file")
        }
        return problems
    }
}

/// One server under one fleet size: every measurement of the run.
public struct ControlRun: Sendable, Codable {
    public var target: ControlTarget
    public var nodes: Int
    /// Fleet start to every node connected (and, for qarax-control, alive in its registry).
    public var connectSeconds: Double
    /// Heartbeats only.
    public var steadyCoreShare: Double
    public var steadyRSSBytes: UInt64
    public var beatsPerSecond: Double
    /// Heartbeat → HeartbeatAck, as the nodes saw it.
    public var heartbeatRoundTripMs: Percentiles?
    /// Node writes an event → the server takes it up (from the server's histogram).
    public var eventLagMs: Percentiles?
    /// With API load on top.
    public var api: APIPhase?
    /// Restart: new process started → every node reconnected / alive again.
    public var restartReadySeconds: Double?
    public var reconnectSeconds: Double?
    public var peakRSSBytes: UInt64
    public var disconnectsOutsideRestart: Int

    public struct Percentiles: Sendable, Codable {
        public var p50: Double
        public var p99: Double
        public var samples: Int
    }

    public struct APIPhase: Sendable, Codable {
        public var targetRate: Double
        public var achievedRate: Double
        public var coreShare: Double
        public var routes: [Route]
        /// Requests due but never sent: the server was more than the run's length behind.
        public var dropped: Int
        public var firstError: String?
    }

    public struct Route: Sendable, Codable {
        public var route: String
        public var count: Int
        public var errors: Int
        public var p50Ms: Double
        public var p99Ms: Double
    }
}

/// `qarax-bench control`: simulated nodes over the real Wire protocol against qarax-control and
/// against the discard server, measured the same way.
public struct ControlBench: Sendable {
    public let options: ControlBenchOptions
    private let progress: @Sendable (String) -> Void

    public init(options: ControlBenchOptions, progress: @escaping @Sendable (String) -> Void) {
        self.options = options
        self.progress = progress
    }

    public func run() async throws -> [ControlRun] {
        ProcessSampler.raiseOpenFileLimit()
        if options.tls { try preparePKI(upTo: options.nodeCounts.max() ?? 0) }
        var runs: [ControlRun] = []
        for (round, nodes) in options.nodeCounts.enumerated() {
            // Alternate which target goes first, so drift of the machine does not favour one.
            let order = round % 2 == 0 ? options.targets : options.targets.reversed()
            for target in order {
                try Task.checkCancellation()
                runs.append(try await measure(target, nodes: nodes))
            }
        }
        return runs
    }

    // MARK: PKI

    private func preparePKI(upTo count: Int) throws {
        let dir = options.pkiDirectory
        if !FileManager.default.fileExists(atPath: ClusterPKI.caCertificatePath(dir: dir)) {
            try ClusterPKI.initCA(dir: dir)
        }
        if !FileManager.default.fileExists(atPath: dir + "/qarax-control.pem") { try ClusterPKI.issueControl(dir: dir) }
        let missing = (0..<count).filter { !FileManager.default.fileExists(atPath: dir + "/\(nodeName($0)).pem") }
        for (done, index) in missing.enumerated() {
            if done % 250 == 0 { progress("issuing node certificates: \(done)/\(missing.count) (kept in \(dir))") }
            try ClusterPKI.issueNode(name: nodeName(index), dir: dir)
        }
    }

    private func nodeName(_ index: Int) -> String { "bench-node-\(index)" }

    // MARK: One run

    private func measure(_ target: ControlTarget, nodes: Int) async throws -> ControlRun {
        let label = "\(target.rawValue) × \(nodes) nodes"
        let dir = options.scratchDirectory + "/\(target.rawValue)-\(nodes)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        progress("\(label): starting the server")
        var server = try await launch(target, dir: dir, api: 0, nodes: 0, generation: 0)
        var stopped = false
        defer { if !stopped { kill(server.process.pid, SIGKILL) } }

        let pki = options.pkiDirectory
        let tls = options.tls
        let fleet = SimulatedFleet(configuration: FleetConfiguration(
            endpoint: .tcp(host: "127.0.0.1", port: server.nodePort),
            security: { index in tls ? .mutualTLS(WireTLSFiles(directory: pki, name: "bench-node-\(index)")) : .insecurePlaintext },
            namePrefix: "bench-node", beatInterval: options.beatInterval,
            wireHeartbeatInterval: options.wireHeartbeatInterval, jitter: options.jitter))
        let connectStart = ContinuousClock.now
        await fleet.start(0..<nodes, rate: options.connectRate)
        try await settle(label: label, phase: "connecting", fleet: fleet, server: server, nodes: nodes)
        let connectSeconds = ProcessSample.seconds(ContinuousClock.now - connectStart)

        // Let the connect-time work (inventory writes, liveness flushes) finish before measuring.
        try await Task.sleep(for: options.beatInterval * 3)
        let lagBefore = try await server.scrapeLag()
        let disconnectsBefore = fleet.stats.counters.disconnects
        let beatsBefore = fleet.stats.counters.beats
        fleet.stats.startRecording()
        let steadyStart = try ProcessSampler.sample(pid: server.process.pid)
        progress("\(label): heartbeats only for \(options.steady)")
        try await Task.sleep(for: options.steady)
        let steadyEnd = try ProcessSampler.sample(pid: server.process.pid)
        let roundTrips = fleet.stats.stopRecording()
        let beats = fleet.stats.counters.beats - beatsBefore
        let lagAfter = try await server.scrapeLag()

        var api: ControlRun.APIPhase?
        if options.apiRate > 0 {
            progress("\(label): API load, \(Int(options.apiRate)) requests/s for \(options.apiDuration)")
            let before = try ProcessSampler.sample(pid: server.process.pid)
            let load = APILoad(host: "127.0.0.1", port: server.apiPort, token: server.token, rate: options.apiRate,
                               duration: options.apiDuration, users: options.apiUsers, namePrefix: "bench-vm-\(nodes)")
            let result = try await load.run()
            let after = try ProcessSampler.sample(pid: server.process.pid)
            api = Self.apiPhase(result, rate: options.apiRate, coreShare: after.coreShare(since: before))
        }
        let disconnects = fleet.stats.counters.disconnects - disconnectsBefore

        var readySeconds: Double?
        var reconnectSeconds: Double?
        var peak = try ProcessSampler.sample(pid: server.process.pid).peakRSSBytes
        if options.restart {
            progress("\(label): restarting the server (SIGTERM, then the same ports)")
            await server.process.stop()
            try await waitFor(label: label, phase: "noticing the restart", timeout: options.settleTimeout) {
                fleet.stats.connectedCount == 0
            }
            let restartStart = ContinuousClock.now
            server = try await launch(target, dir: dir, api: server.apiPort, nodes: server.nodePort, generation: 1)
            readySeconds = ProcessSample.seconds(ContinuousClock.now - restartStart)
            try await settle(label: label, phase: "reconnecting", fleet: fleet, server: server, nodes: nodes)
            reconnectSeconds = ProcessSample.seconds(ContinuousClock.now - restartStart)
            peak = max(peak, try ProcessSampler.sample(pid: server.process.pid).peakRSSBytes)
        }
        progress("\(label): stopping")
        await fleet.stop()
        await server.process.stop()
        stopped = true
        try? FileManager.default.removeItem(atPath: dir)

        return ControlRun(
            target: target, nodes: nodes, connectSeconds: connectSeconds,
            steadyCoreShare: steadyEnd.coreShare(since: steadyStart), steadyRSSBytes: steadyEnd.rssBytes,
            beatsPerSecond: Double(beats) / ProcessSample.seconds(steadyEnd.at - steadyStart.at),
            heartbeatRoundTripMs: Self.percentiles(roundTrips.map { $0 * 1000 }),
            eventLagMs: LagHistogram.difference(lagAfter, lagBefore).percentiles,
            api: api, restartReadySeconds: readySeconds, reconnectSeconds: reconnectSeconds, peakRSSBytes: peak,
            disconnectsOutsideRestart: disconnects)
    }

    /// Waits until every node is connected and, for qarax-control, alive in its registry.
    private func settle(label: String, phase: String, fleet: SimulatedFleet, server: RunningServer, nodes: Int) async throws {
        try await waitFor(label: label, phase: phase, timeout: options.settleTimeout) {
            let up = fleet.stats.connectedCount
            return up >= nodes
        } detail: {
            "\(fleet.stats.connectedCount)/\(nodes) connected" + (fleet.stats.counters.lastError.map { ", last error: \($0)" } ?? "")
        }
        try await waitFor(label: label, phase: phase + " (server's view)", timeout: options.settleTimeout) {
            (try? await server.aliveNodes()) ?? 0 >= nodes
        }
    }

    /// Polls `condition` every 50 ms (a harness, not a test: the condition lives in other processes).
    private func waitFor(label: String, phase: String, timeout: Duration, _ condition: () async -> Bool,
                         detail: () -> String = { "" }) async throws {
        let end = ContinuousClock.now + timeout
        var lastReport = ContinuousClock.now
        while !(await condition()) {
            guard ContinuousClock.now < end else {
                throw ServerProcessError("\(label): \(phase) did not finish within \(timeout) \(detail())")
            }
            if ContinuousClock.now - lastReport > .milliseconds(500) {
                progress("\(label): \(phase)… \(detail())")
                lastReport = .now
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    // MARK: Servers

    struct RunningServer: Sendable {
        var process: ServerProcess
        var apiPort: Int
        var nodePort: Int
        var token: String

        func metrics() async throws -> String {
            let connection = try await HTTPConnection.connect(host: "127.0.0.1", port: apiPort, group: .singletonMultiThreadedEventLoopGroup)
            let status: Int
            let body: ByteBuffer
            do {
                (status, body) = try await connection.send(.GET, "/metrics", headers: [("Authorization", "Bearer \(token)")], body: nil)
            } catch {
                await connection.close()
                throw error
            }
            await connection.close()
            guard status == 200 else { throw ServerProcessError("/metrics answered HTTP \(status)") }
            return String(buffer: body)
        }

        func aliveNodes() async throws -> Int {
            let text = try await metrics()
            for line in text.split(separator: "\n") where line.hasPrefix("qarax_nodes_alive ") {
                return Int(line.split(separator: " ")[1]) ?? 0
            }
            return 0
        }

        func scrapeLag() async throws -> LagHistogram { LagHistogram(prometheus: try await metrics()) }
    }

    private func launch(_ target: ControlTarget, dir: String, api: Int, nodes: Int, generation: Int) async throws -> RunningServer {
        let security = options.tls ? ["--tls-dir", options.pkiDirectory] : ["--insecure"]
        let (executable, arguments, prefix): (String, [String], String) = switch target {
        case .qarax:
            (options.controlBinary, ["serve", "--db", dir + "/qarax.db", "--api", "127.0.0.1:\(api)",
                                     "--nodes", "127.0.0.1:\(nodes)"] + security, "qarax-control ready:")
        case .discard:
            (options.benchBinary, ["discard-server", "--api", "127.0.0.1:\(api)", "--nodes", "127.0.0.1:\(nodes)"] + security,
             "qarax-bench discard-server ready:")
        }
        let process = try ServerProcess(executable: executable, arguments: arguments,
                                        logPath: dir + "/server-\(generation).log", readyPrefix: prefix)
        let line: String
        do {
            line = try await process.readyLine(timeout: .seconds(60))
        } catch {
            await process.stop(signal: SIGKILL)
            throw error
        }
        guard let apiPort = Self.port(in: line, after: "http://127.0.0.1:"),
              let nodePort = Self.port(in: line, after: "nodes on 127.0.0.1:") else {
            await process.stop(signal: SIGKILL)
            throw ServerProcessError("cannot read the ports from its ready line: \(line)")
        }
        let token = target == .qarax
            ? ((try? String(contentsOfFile: dir + "/qarax.db.token", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
            : "discard"
        return RunningServer(process: process, apiPort: apiPort, nodePort: nodePort, token: token)
    }

    static func port(in line: String, after marker: String) -> Int? {
        guard let range = line.range(of: marker) else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    // MARK: Statistics

    static func percentiles(_ samples: [Double]) -> ControlRun.Percentiles? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        func at(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.down)))] }
        return ControlRun.Percentiles(p50: at(50), p99: at(99), samples: sorted.count)
    }

    static func apiPhase(_ result: APILoad.Result, rate: Double, coreShare: Double) -> ControlRun.APIPhase {
        let routes = result.latencies.keys.sorted().map { route -> ControlRun.Route in
            let samples = (result.latencies[route] ?? []).map { $0 * 1000 }
            let stats = percentiles(samples)
            return ControlRun.Route(route: route, count: samples.count, errors: result.errors[route] ?? 0,
                                    p50Ms: stats?.p50 ?? 0, p99Ms: stats?.p99 ?? 0)
        }
        return ControlRun.APIPhase(targetRate: rate, achievedRate: result.elapsed > 0 ? Double(result.sent) / result.elapsed : 0,
                                   coreShare: coreShare, routes: routes, dropped: result.dropped, firstError: result.firstError)
    }
}

/// The cumulative buckets of `qarax_node_event_lag_seconds` as scraped from `/metrics`.
struct LagHistogram: Sendable {
    /// (upper bound in seconds, cumulative count), +Inf last.
    var buckets: [(Double, Double)]

    init(buckets: [(Double, Double)]) { self.buckets = buckets }

    init(prometheus text: String) {
        var buckets: [(Double, Double)] = []
        let prefix = "qarax_node_event_lag_seconds_bucket{le=\""
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            let rest = line.dropFirst(prefix.count)
            guard let quote = rest.firstIndex(of: "\""), let space = rest.lastIndex(of: " "),
                  let count = Double(rest[rest.index(after: space)...]) else { continue }
            let bound = rest[..<quote] == "+Inf" ? Double.infinity : Double(rest[..<quote]) ?? .infinity
            buckets.append((bound, count))
        }
        self.buckets = buckets
    }

    static func difference(_ after: LagHistogram, _ before: LagHistogram) -> LagHistogram {
        guard after.buckets.count == before.buckets.count else { return after }
        return LagHistogram(buckets: zip(after.buckets, before.buckets).map { ($0.0, $0.1 - $1.1) })
    }

    /// p50 and p99 in milliseconds, interpolated linearly inside a bucket (so as precise as the
    /// 1-2-5 buckets allow).
    var percentiles: ControlRun.Percentiles? {
        guard let total = buckets.last?.1, total > 0 else { return nil }
        func quantile(_ q: Double) -> Double {
            let rank = q * total
            var lower = 0.0
            var below = 0.0
            for (bound, cumulative) in buckets {
                if cumulative >= rank {
                    guard bound.isFinite else { return lower * 1000 }
                    let inBucket = cumulative - below
                    let fraction = inBucket > 0 ? (rank - below) / inBucket : 1
                    return (lower + (bound - lower) * fraction) * 1000
                }
                lower = bound.isFinite ? bound : lower
                below = cumulative
            }
            return lower * 1000
        }
        return ControlRun.Percentiles(p50: quantile(0.5), p99: quantile(0.99), samples: Int(total))
    }
}
