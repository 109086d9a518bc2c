/// Resource limits of one VM's cgroup. `nil` leaves a limit at the kernel's default (unlimited).
///
/// Values use cgroup-v2 semantics; on cgroup v1 they are translated:
/// - `cpuQuota`/`cpuPeriod` → `cpu.cfs_quota_us` / `cpu.cfs_period_us` (v2: `cpu.max`).
/// - `cpuWeight` (1…10000, default 100) → `cpu.shares` = weight × 1024 / 100, clamped to 2…262144,
///   so the v2 default weight 100 maps to the v1 default 1024 shares (v2: `cpu.weight`).
/// - `memoryMax` → `memory.limit_in_bytes` (v2: `memory.max`).
/// - `memoryHigh` → `memory.soft_limit_in_bytes` (v2: `memory.high`). v1 has no throttling
///   threshold; the soft limit is the closest: reclaim pushes the group back towards it under host
///   memory pressure, but the group may exceed it while memory is plentiful.
/// - `pidsMax` → `pids.max` on both.
/// - `cpusetCpus`/`cpusetMems` → `cpuset.cpus` / `cpuset.mems` on both.
public struct CgroupLimits: Hashable, Sendable, Codable {
    /// CPU time the group may use per period, in microseconds.
    public var cpuQuota: UInt64?
    /// The period of `cpuQuota` in microseconds (default 100000 when a quota is set).
    public var cpuPeriod: UInt64?
    /// Relative CPU weight, 1…10000 (v2 scale).
    public var cpuWeight: UInt64?
    /// Hard memory limit in bytes; the OOM killer acts above it.
    public var memoryMax: UInt64?
    /// Memory throttling threshold in bytes (v1: soft limit, see above).
    public var memoryHigh: UInt64?
    /// Maximum number of tasks (processes and threads).
    public var pidsMax: UInt64?
    /// CPUs in cpuset list syntax, e.g. `0-3,6`.
    public var cpusetCpus: String?
    /// NUMA memory nodes in cpuset list syntax, e.g. `0`.
    public var cpusetMems: String?

    public init(cpuQuota: UInt64? = nil, cpuPeriod: UInt64? = nil, cpuWeight: UInt64? = nil,
                memoryMax: UInt64? = nil, memoryHigh: UInt64? = nil, pidsMax: UInt64? = nil,
                cpusetCpus: String? = nil, cpusetMems: String? = nil) {
        self.cpuQuota = cpuQuota
        self.cpuPeriod = cpuPeriod
        self.cpuWeight = cpuWeight
        self.memoryMax = memoryMax
        self.memoryHigh = memoryHigh
        self.pidsMax = pidsMax
        self.cpusetCpus = cpusetCpus
        self.cpusetMems = cpusetMems
    }

    /// No limits.
    public static let none = CgroupLimits()

    public static let defaultCPUPeriod: UInt64 = 100_000
    public static let cpuPeriodRange: ClosedRange<UInt64> = 1_000...1_000_000
    public static let minimumCPUQuota: UInt64 = 1_000
    public static let cpuWeightRange: ClosedRange<UInt64> = 1...10_000
    public static let minimumMemory: UInt64 = 1 << 20
    public static let maximumPids: UInt64 = 4_194_304

    /// The controllers these limits need, sorted.
    public var requiredControllers: [String] {
        var needed: [String] = []
        if cpuQuota != nil || cpuPeriod != nil || cpuWeight != nil { needed.append("cpu") }
        if cpusetCpus != nil || cpusetMems != nil { needed.append("cpuset") }
        if memoryMax != nil || memoryHigh != nil { needed.append("memory") }
        if pidsMax != nil { needed.append("pids") }
        return needed
    }

    /// The first field that needs `controller`, for error messages.
    func firstField(needing controller: String) -> String {
        switch controller {
        case "cpu": cpuQuota != nil ? "cpu_quota" : (cpuPeriod != nil ? "cpu_period" : "cpu_weight")
        case "cpuset": cpusetCpus != nil ? "cpuset_cpus" : "cpuset_mems"
        case "memory": memoryMax != nil ? "memory_max" : "memory_high"
        default: "pids_max"
        }
    }

    /// Checks every value against the kernel's accepted ranges (pure; host-independent).
    public func validate() throws(CgroupError) {
        if let period = cpuPeriod, !Self.cpuPeriodRange.contains(period) {
            throw .invalidLimit(field: "cpu_period", value: "\(period)",
                                reason: "is outside \(Self.cpuPeriodRange.lowerBound)…\(Self.cpuPeriodRange.upperBound) microseconds")
        }
        if cpuPeriod != nil && cpuQuota == nil {
            throw .invalidLimit(field: "cpu_period", value: "\(cpuPeriod ?? 0)", reason: "is set without cpu_quota")
        }
        if let quota = cpuQuota, quota < Self.minimumCPUQuota {
            throw .invalidLimit(field: "cpu_quota", value: "\(quota)",
                                reason: "is below the minimum \(Self.minimumCPUQuota) microseconds")
        }
        if let weight = cpuWeight, !Self.cpuWeightRange.contains(weight) {
            throw .invalidLimit(field: "cpu_weight", value: "\(weight)",
                                reason: "is outside \(Self.cpuWeightRange.lowerBound)…\(Self.cpuWeightRange.upperBound)")
        }
        if let max = memoryMax, max < Self.minimumMemory {
            throw .invalidLimit(field: "memory_max", value: "\(max)",
                                reason: "is below the minimum \(Self.minimumMemory) (1 MiB)")
        }
        if let high = memoryHigh, high < Self.minimumMemory {
            throw .invalidLimit(field: "memory_high", value: "\(high)",
                                reason: "is below the minimum \(Self.minimumMemory) (1 MiB)")
        }
        if let high = memoryHigh, let max = memoryMax, high > max {
            throw .invalidLimit(field: "memory_high", value: "\(high)", reason: "is above memory_max \(max)")
        }
        if let pids = pidsMax, pids < 1 || pids > Self.maximumPids {
            throw .invalidLimit(field: "pids_max", value: "\(pids)", reason: "is outside 1…\(Self.maximumPids)")
        }
        if let cpus = cpusetCpus, CpuList.parse(cpus) == nil {
            throw .invalidLimit(field: "cpuset_cpus", value: "'\(cpus)'", reason: "is not a CPU list such as 0-3,6")
        }
        if let mems = cpusetMems, CpuList.parse(mems) == nil {
            throw .invalidLimit(field: "cpuset_mems", value: "'\(mems)'", reason: "is not a node list such as 0 or 0-1")
        }
    }

    /// v2 `cpu.weight` → v1 `cpu.shares`: weight × 1024 / 100, clamped to 2…262144.
    public static func shares(fromWeight weight: UInt64) -> UInt64 {
        min(max(weight * 1024 / 100, 2), 262_144)
    }

    /// v1 `cpu.shares` → v2 weight, the inverse of `shares(fromWeight:)` (rounded to nearest).
    public static func weight(fromShares shares: UInt64) -> UInt64 {
        min(max((shares * 100 + 512) / 1024, 1), 10_000)
    }
}

/// The cpuset list syntax (`0-3,6,8-9`), as a sorted set of numbers.
public enum CpuList {
    /// The numbers in `text`, or nil when it is not a list; an empty text is an empty list.
    public static func parse(_ text: String) -> Set<Int>? {
        let trimmed = CgroupFS.trim(text)
        var result = Set<Int>()
        if trimmed.isEmpty { return result }
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2,
                  let low = Int(bounds[0]), low >= 0,
                  let high = Int(bounds.count == 2 ? bounds[1] : bounds[0]), high >= low, high < 65_536
            else { return nil }
            result.formUnion(low...high)
        }
        return result
    }
}
