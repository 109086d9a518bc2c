public import Foundation

/// Every boot of one variant (qarax or the direct baseline, one VMM, one concurrency level).
public struct VariantRun: Sendable {
    public enum Kind: String, Codable, Sendable { case qarax, direct }
    public let kind: Kind
    public let vmm: String
    public let concurrency: Int
    public var samples: [BootSample]
    /// Node CPU time (user + system of this process) over the variant's boots, per VM.
    public var nodeCPUMillisecondsPerVM: Double?

    public init(kind: Kind, vmm: String, concurrency: Int, samples: [BootSample] = [], nodeCPUMillisecondsPerVM: Double? = nil) {
        self.kind = kind
        self.vmm = vmm
        self.concurrency = concurrency
        self.samples = samples
        self.nodeCPUMillisecondsPerVM = nodeCPUMillisecondsPerVM
    }

    public var name: String { "\(kind.rawValue) \(vmm) c=\(concurrency)" }
    public var bootTimes: [Double] { samples.compactMap(\.bootMilliseconds) }
}

/// The goals of issue 8 for qarax against the direct launch.
public struct BootGoals: Codable, Sendable, Hashable {
    public var overheadP50Milliseconds = 2.0
    public var overheadP99Milliseconds = 5.0
    public var overheadRatioP50 = 1.03
    public var nodeCPUMillisecondsPerVM = 1.0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case overheadP50Milliseconds = "overhead_ms_p50_max"
        case overheadP99Milliseconds = "overhead_ms_p99_max"
        case overheadRatioP50 = "overhead_ratio_p50_max"
        case nodeCPUMillisecondsPerVM = "node_cpu_ms_per_vm_max"
    }
}

/// One variant as the JSON report has it.
public struct VariantSummary: Codable, Sendable, Hashable {
    public var name: String
    public var kind: VariantRun.Kind
    public var vmm: String
    public var concurrency: Int
    public var boots: Int
    public var p50Ms: Double?
    public var p90Ms: Double?
    public var p99Ms: Double?
    public var p50CI: [Double]?
    public var p90CI: [Double]?
    public var p99CI: [Double]?
    /// Median of each phase (ending at the named point), in ms.
    public var phaseMediansMs: [String: Double]
    public var baseline: String?
    public var overheadMsP50: Double?
    public var overheadMsP50CI: [Double]?
    public var overheadMsP90: Double?
    public var overheadMsP90CI: [Double]?
    public var overheadMsP99: Double?
    public var overheadMsP99CI: [Double]?
    public var overheadRatioP50: Double?
    public var nodeCPUMsPerVM: Double?

    enum CodingKeys: String, CodingKey {
        case name, kind, vmm, concurrency, boots, baseline
        case p50Ms = "p50_ms", p90Ms = "p90_ms", p99Ms = "p99_ms"
        case p50CI = "p50_ci95_ms", p90CI = "p90_ci95_ms", p99CI = "p99_ci95_ms"
        case phaseMediansMs = "phase_medians_ms"
        case overheadMsP50 = "overhead_ms_p50", overheadMsP50CI = "overhead_ms_p50_ci95"
        case overheadMsP90 = "overhead_ms_p90", overheadMsP90CI = "overhead_ms_p90_ci95"
        case overheadMsP99 = "overhead_ms_p99", overheadMsP99CI = "overhead_ms_p99_ci95"
        case overheadRatioP50 = "overhead_ratio_p50"
        case nodeCPUMsPerVM = "node_cpu_ms_per_vm"
    }
}

/// One goal checked for one qarax variant.
public struct GoalCheck: Codable, Sendable, Hashable {
    public var variant: String
    public var goal: String
    public var measured: Double?
    public var limit: Double
    /// nil when there was nothing to measure.
    public var met: Bool?
}

/// The whole result of `qarax-bench boot`.
public struct BootReport: Codable, Sendable {
    public var tool = "qarax-bench boot"
    public var vmm: String
    public var vmmBinary: String
    /// True when the VMM is `ch-sim`, the REST test double, not a VMM.
    public var simulatedVMM: Bool
    public var kernel: String
    public var host: String
    public var seed: UInt64
    public var goals: BootGoals
    public var variants: [VariantSummary]
    public var verdict: [GoalCheck]

    enum CodingKeys: String, CodingKey {
        case tool, vmm, kernel, host, seed, goals, variants, verdict
        case vmmBinary = "vmm_binary", simulatedVMM = "simulated_vmm"
    }

    /// Summarizes `runs`; each qarax run is compared with the direct run of the same VMM and
    /// concurrency.
    public init(runs: [VariantRun], vmm: String, vmmBinary: String, simulatedVMM: Bool, kernel: String,
                host: String, seed: UInt64, goals: BootGoals = BootGoals()) {
        self.vmm = vmm
        self.vmmBinary = vmmBinary
        self.simulatedVMM = simulatedVMM
        self.kernel = kernel
        self.host = host
        self.seed = seed
        self.goals = goals
        var summaries: [VariantSummary] = []
        var checks: [GoalCheck] = []
        for run in runs {
            let times = run.bootTimes
            func ci(_ p: Double) -> [Double]? {
                Statistics.bootstrap(times, percentile: p, seed: seed).map { [Self.round($0.low), Self.round($0.high)] }
            }
            var phaseMedians: [String: Double] = [:]
            for point in BootPoint.allCases where point != .requestReceived {
                let durations = run.samples.compactMap { sample in sample.phases.first { $0.0 == point }?.1 }
                if let median = Statistics.median(durations) { phaseMedians[point.rawValue] = Self.round(median) }
            }
            var summary = VariantSummary(
                name: run.name, kind: run.kind, vmm: run.vmm, concurrency: run.concurrency, boots: times.count,
                p50Ms: Statistics.percentile(times, 50).map(Self.round), p90Ms: Statistics.percentile(times, 90).map(Self.round),
                p99Ms: Statistics.percentile(times, 99).map(Self.round), p50CI: ci(50), p90CI: ci(90), p99CI: ci(99),
                phaseMediansMs: phaseMedians, nodeCPUMsPerVM: run.nodeCPUMillisecondsPerVM.map(Self.round))
            if run.kind == .qarax,
               let base = runs.first(where: { $0.kind == .direct && $0.vmm == run.vmm && $0.concurrency == run.concurrency }) {
                let baseTimes = base.bootTimes
                summary.baseline = base.name
                func diff(_ p: Double) -> Estimate? { Statistics.bootstrapDifference(times, baseTimes, percentile: p, seed: seed) }
                let d50 = diff(50), d90 = diff(90), d99 = diff(99)
                summary.overheadMsP50 = d50.map { Self.round($0.value) }
                summary.overheadMsP50CI = d50.map { [Self.round($0.low), Self.round($0.high)] }
                summary.overheadMsP90 = d90.map { Self.round($0.value) }
                summary.overheadMsP90CI = d90.map { [Self.round($0.low), Self.round($0.high)] }
                summary.overheadMsP99 = d99.map { Self.round($0.value) }
                summary.overheadMsP99CI = d99.map { [Self.round($0.low), Self.round($0.high)] }
                if let q = Statistics.percentile(times, 50), let b = Statistics.percentile(baseTimes, 50), b > 0 {
                    summary.overheadRatioP50 = (q / b * 10_000).rounded() / 10_000
                }
                checks.append(GoalCheck(variant: run.name, goal: "overhead p50 (ms)", measured: summary.overheadMsP50,
                                        limit: goals.overheadP50Milliseconds, met: summary.overheadMsP50.map { $0 <= goals.overheadP50Milliseconds }))
                checks.append(GoalCheck(variant: run.name, goal: "overhead p99 (ms)", measured: summary.overheadMsP99,
                                        limit: goals.overheadP99Milliseconds, met: summary.overheadMsP99.map { $0 <= goals.overheadP99Milliseconds }))
                checks.append(GoalCheck(variant: run.name, goal: "overhead ratio p50", measured: summary.overheadRatioP50,
                                        limit: goals.overheadRatioP50, met: summary.overheadRatioP50.map { $0 <= goals.overheadRatioP50 }))
            }
            if run.kind == .qarax {
                checks.append(GoalCheck(variant: run.name, goal: "node CPU per VM (ms)", measured: summary.nodeCPUMsPerVM,
                                        limit: goals.nodeCPUMillisecondsPerVM, met: summary.nodeCPUMsPerVM.map { $0 <= goals.nodeCPUMillisecondsPerVM }))
            }
            summaries.append(summary)
        }
        variants = summaries
        verdict = checks
    }

    static func round(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }

    /// Pretty, key-sorted JSON.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// A markdown table of the variants, the phase medians, and the verdict.
    public func markdown() -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "–" }
        func ci(_ v: [Double]?) -> String { v.map { " [\(f($0[0])), \(f($0[1]))]" } ?? "" }
        var out = "# qarax-bench boot\n\n"
        out += "VMM: `\(vmm)` (`\(vmmBinary)`)\(simulatedVMM ? " — **ch-sim, the cloud-hypervisor REST simulator, not a VMM**" : "")  \n"
        out += "Kernel: `\(kernel)`  \nHost: \(host)  \nBootstrap seed: \(seed), 95 % intervals\n\n"
        out += "## Boot time (request → guest ready marker), ms\n\n"
        out += "| variant | boots | p50 | p90 | p99 | overhead p50 | overhead p90 | overhead p99 | ratio p50 | node CPU ms/VM |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for v in variants {
            out += "| \(v.name) | \(v.boots) | \(f(v.p50Ms))\(ci(v.p50CI)) | \(f(v.p90Ms))\(ci(v.p90CI)) | \(f(v.p99Ms))\(ci(v.p99CI)) "
            out += "| \(f(v.overheadMsP50))\(ci(v.overheadMsP50CI)) | \(f(v.overheadMsP90))\(ci(v.overheadMsP90CI)) "
            out += "| \(f(v.overheadMsP99))\(ci(v.overheadMsP99CI)) | \(v.overheadRatioP50.map { String(format: "%.4f", $0) } ?? "–") | \(f(v.nodeCPUMsPerVM)) |\n"
        }
        out += "\n## Phase medians, ms (each phase ends at the named point)\n\n"
        let points = BootPoint.allCases.filter { $0 != .requestReceived }
        out += "| variant | " + points.map(\.rawValue).joined(separator: " | ") + " |\n"
        out += "|---|" + points.map { _ in "---:" }.joined(separator: "|") + "|\n"
        for v in variants {
            out += "| \(v.name) | " + points.map { f(v.phaseMediansMs[$0.rawValue]) }.joined(separator: " | ") + " |\n"
        }
        out += "\n## Verdict against the goals\n\n| variant | goal | measured | limit | result |\n|---|---|---:|---:|---|\n"
        for c in verdict {
            let result = c.met.map { $0 ? "met" : "**missed**" } ?? "not measured"
            out += "| \(c.variant) | \(c.goal) | \(f(c.measured)) | \(f(c.limit)) | \(result) |\n"
        }
        return out
    }
}
