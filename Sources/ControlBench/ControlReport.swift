import Foundation

/// The report of `qarax-bench control`: tables, the goals and the verdict.
public struct ControlReport: Sendable, Codable {
    public var runs: [ControlRun]
    public var host: String
    public var tls: Bool
    public var beatIntervalSeconds: Double
    public var apiRate: Double
    public var goals: Goals
    public var verdict: [String]

    public struct Goals: Sendable, Codable {
        public var nodes = 10_000
        public var maxCoreShare = 0.10
        public var maxRSSBytes: UInt64 = 200_000_000
        public var apiRate = 1000.0
        public var maxMutatingP99Ms = 10.0
    }

    public init(runs: [ControlRun], host: String, tls: Bool, beatInterval: Duration, apiRate: Double) {
        self.runs = runs
        self.host = host
        self.tls = tls
        beatIntervalSeconds = ProcessSample.seconds(beatInterval)
        self.apiRate = apiRate
        goals = Goals()
        verdict = Self.verdict(runs, goals: goals)
    }

    static func verdict(_ runs: [ControlRun], goals: Goals) -> [String] {
        var lines: [String] = []
        let qarax = runs.filter { $0.target == .qarax }
        if let big = qarax.first(where: { $0.nodes == goals.nodes }) {
            let cpu = big.steadyCoreShare <= goals.maxCoreShare
            let rss = big.steadyRSSBytes <= goals.maxRSSBytes
            lines.append("\(goals.nodes) nodes heartbeating: \(percent(big.steadyCoreShare)) of one core "
                         + "(goal ≤ \(percent(goals.maxCoreShare))) — \(cpu ? "met" : "missed"); RSS \(megabytes(big.steadyRSSBytes)) "
                         + "(goal ≤ \(megabytes(goals.maxRSSBytes))) — \(rss ? "met" : "missed")")
        } else {
            lines.append("\(goals.nodes) nodes were not measured (pass --nodes …,\(goals.nodes))")
        }
        for run in qarax {
            guard let api = run.api else { continue }
            let mutating = api.routes.filter { !$0.route.hasPrefix("GET") }
            let worst = mutating.map(\.p99Ms).max() ?? 0
            let errors = api.routes.map(\.errors).reduce(0, +) + api.dropped
            let rateNote = api.targetRate >= goals.apiRate ? "" : " (below the goal's \(Int(goals.apiRate)) requests/s)"
            lines.append("\(run.nodes) nodes, API at \(Int(api.achievedRate)) requests/s\(rateNote): worst mutating p99 "
                         + "\(fixed(worst)) ms (goal ≤ \(fixed(goals.maxMutatingP99Ms)) ms) — "
                         + "\(worst <= goals.maxMutatingP99Ms && errors == 0 ? "met" : "missed")"
                         + (errors > 0 ? ", \(errors) failed or dropped requests" : ""))
        }
        return lines
    }

    public func markdown() -> String {
        var out = "# qarax-bench control\n\n"
        out += "\(host); node links \(tls ? "mutual TLS 1.3" : "plaintext"); liveness report every \(fixed(beatIntervalSeconds)) s ± jitter per node; "
        out += "API load \(Int(apiRate)) requests/s (create → start → stop → get → delete per VM).\n\n"
        out += "## Heartbeats only\n\n"
        out += "| server | nodes | CPU (% of one core) | ratio | RSS MB | beats/s | heartbeat RTT p50 / p99 ms | event lag p50 / p99 ms | connect s | restart: ready s | restart: all back s |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for run in runs {
            let baseline = runs.first { $0.target == .discard && $0.nodes == run.nodes }
            let ratio = run.target == .qarax ? baseline.map { $0.steadyCoreShare > 0 ? fixed(run.steadyCoreShare / $0.steadyCoreShare) + "×" : "–" } ?? "–" : ""
            out += "| \(run.target.rawValue) | \(run.nodes) | \(Self.percent(run.steadyCoreShare)) | \(ratio) | \(Self.megabytes(run.steadyRSSBytes)) "
            out += "| \(Int(run.beatsPerSecond)) | \(pair(run.heartbeatRoundTripMs)) | \(pair(run.eventLagMs)) "
            out += "| \(fixed(run.connectSeconds)) | \(run.restartReadySeconds.map(fixed) ?? "–") | \(run.reconnectSeconds.map(fixed) ?? "–") |\n"
        }
        if runs.contains(where: { $0.api != nil }) {
            out += "\n## API load (latency from each request's due time)\n\n"
            out += "| server | nodes | achieved req/s | CPU (% of one core) | route | count | errors | p50 ms | p99 ms |\n"
            out += "|---|---:|---:|---:|---|---:|---:|---:|---:|\n"
            for run in runs {
                guard let api = run.api else { continue }
                for route in api.routes {
                    out += "| \(run.target.rawValue) | \(run.nodes) | \(Int(api.achievedRate)) | \(Self.percent(api.coreShare)) "
                    out += "| `\(route.route)` | \(route.count) | \(route.errors) | \(fixed(route.p50Ms)) | \(fixed(route.p99Ms)) |\n"
                }
                if api.dropped > 0 {
                    out += "\n\(run.target.rawValue), \(run.nodes) nodes: \(api.dropped) requests dropped (not sent within twice the run's length)\n\n"
                }
                if let error = api.firstError { out += "\nFirst failed request (\(run.target.rawValue), \(run.nodes) nodes): \(error)\n\n" }
            }
        }
        out += "\n## Against the goals\n\n" + verdict.map { "- \($0)\n" }.joined()
        return out
    }

    public func write(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(markdown().utf8).write(to: URL(fileURLWithPath: directory + "/control.md"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try encoder.encode(self).write(to: URL(fileURLWithPath: directory + "/control.json"))
    }

    static func percent(_ share: Double) -> String { String(format: "%.1f %%", share * 100) }
    static func megabytes(_ bytes: UInt64) -> String { String(format: "%.0f MB", Double(bytes) / 1e6) }
    private func pair(_ value: ControlRun.Percentiles?) -> String {
        value.map { "\(fixed($0.p50)) / \(fixed($0.p99))" } ?? "–"
    }
}

private func fixed(_ value: Double) -> String {
    value >= 100 ? String(format: "%.0f", value) : value >= 10 ? String(format: "%.1f", value) : String(format: "%.2f", value)
}
