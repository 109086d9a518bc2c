#if canImport(Glibc)
import Glibc
#endif
import CShims

/// One VM's cgroup: its directories in the cgroup2 hierarchy and in each v1 hierarchy it joins.
///
/// Made by `CgroupManager.create` (or `plan`/`open` for an existing group). A plain value: the
/// kernel holds the state; methods read and write the cgroup files. Codable, so it can live in
/// durable per-VM state (or rebuild it with `CgroupManager.open(name:)`).
public struct VMCgroup: Hashable, Sendable, Codable {
    /// The group's directory in one cgroup-v1 hierarchy.
    public struct V1Directory: Hashable, Sendable, Codable {
        /// e.g. `/sys/fs/cgroup/memory/qarax/vm-1`.
        public var path: String
        /// e.g. `/sys/fs/cgroup/memory`.
        public var mountPoint: String
        /// The controllers qarax uses through this directory.
        public var controllers: [String]
        /// Other controllers bound to the same hierarchy (e.g. `cpuacct` next to `cpu`).
        public var coMounted: [String]
    }

    public let name: String
    /// The cgroup2 directory, when cgroup2 is mounted (with or without controllers).
    public let v2Directory: String?
    let v2MountPoint: String?
    /// The controllers the group uses through cgroup2.
    public let v2Controllers: [String]
    public let v1Directories: [V1Directory]

    /// Where the launcher puts the VMM: `CLONE_INTO_CGROUP` into `v2Directory`, then the child
    /// writes its pid into each v1 `cgroup.procs`.
    public var placement: CgroupPlacement {
        CgroupPlacement(v2Directory: v2Directory, v1ProcsFiles: v1Directories.map { $0.path + "/cgroup.procs" })
    }

    /// Every directory of the group, cgroup2 first.
    public var allDirectories: [String] {
        (v2Directory.map { [$0] } ?? []) + v1Directories.map(\.path)
    }

    /// The directory that holds `controller`'s files, and whether it is cgroup2.
    public func directory(for controller: String) -> (path: String, isV2: Bool)? {
        if let dir = v1Directories.first(where: { $0.controllers.contains(controller) }) { return (dir.path, false) }
        if let v2Directory, v2Controllers.contains(controller) { return (v2Directory, true) }
        return nil
    }

    // MARK: Limits

    /// Writes `limits` into the group's files (v2 or v1 names, as each controller lives).
    func apply(_ limits: CgroupLimits, topology: CgroupTopology) throws(CgroupError) {
        do {
            if let (dir, isV2) = directory(for: "cpu") {
                if let quota = limits.cpuQuota {
                    let period = limits.cpuPeriod ?? CgroupLimits.defaultCPUPeriod
                    if isV2 {
                        try CgroupFS.write("\(quota) \(period)", to: dir + "/cpu.max")
                    } else {
                        // Period first: the kernel checks quota against the period in force.
                        try CgroupFS.write("\(period)", to: dir + "/cpu.cfs_period_us")
                        try CgroupFS.write("\(quota)", to: dir + "/cpu.cfs_quota_us")
                    }
                }
                if let weight = limits.cpuWeight {
                    if isV2 {
                        try CgroupFS.write("\(weight)", to: dir + "/cpu.weight")
                    } else {
                        try CgroupFS.write("\(CgroupLimits.shares(fromWeight: weight))", to: dir + "/cpu.shares")
                    }
                }
            }
            if let (dir, isV2) = directory(for: "memory") {
                if let max = limits.memoryMax {
                    try CgroupFS.write("\(max)", to: dir + (isV2 ? "/memory.max" : "/memory.limit_in_bytes"))
                }
                if let high = limits.memoryHigh {
                    try CgroupFS.write("\(high)", to: dir + (isV2 ? "/memory.high" : "/memory.soft_limit_in_bytes"))
                }
            }
            if let (dir, _) = directory(for: "pids"), let pids = limits.pidsMax {
                try CgroupFS.write("\(pids)", to: dir + "/pids.max")
            }
        } catch {
            throw .system(error)
        }
    }

    /// v1 reports "no limit" as a huge page-aligned number (PAGE_COUNTER_MAX × page size).
    static let v1Unlimited: UInt64 = 1 << 62

    /// Reads the limits in force back from the kernel; unlimited values are `nil`, and the CPU
    /// weight is always reported where the cpu controller is present (v1 shares converted back).
    public func readLimits() throws(CgroupError) -> CgroupLimits {
        var limits = CgroupLimits()
        do {
            if let (dir, isV2) = directory(for: "cpu") {
                if isV2 {
                    let text = try CgroupFS.read(dir + "/cpu.max")
                    let parts = text.split(separator: " ")
                    guard parts.count == 2 else { throw CgroupError.unparsable(path: dir + "/cpu.max", content: text) }
                    if parts[0] != "max" {
                        limits.cpuQuota = UInt64(parts[0])
                        limits.cpuPeriod = UInt64(parts[1])
                    }
                    limits.cpuWeight = UInt64(try CgroupFS.read(dir + "/cpu.weight"))
                } else {
                    let quota = try CgroupFS.read(dir + "/cpu.cfs_quota_us")
                    if quota != "-1" {
                        limits.cpuQuota = UInt64(quota)
                        limits.cpuPeriod = UInt64(try CgroupFS.read(dir + "/cpu.cfs_period_us"))
                    }
                    if let shares = UInt64(try CgroupFS.read(dir + "/cpu.shares")) {
                        limits.cpuWeight = CgroupLimits.weight(fromShares: shares)
                    }
                }
            }
            if let (dir, isV2) = directory(for: "memory") {
                limits.memoryMax = try Self.readBytes(dir + (isV2 ? "/memory.max" : "/memory.limit_in_bytes"))
                limits.memoryHigh = try Self.readBytes(dir + (isV2 ? "/memory.high" : "/memory.soft_limit_in_bytes"))
            }
            if let (dir, _) = directory(for: "pids") {
                let text = try CgroupFS.read(dir + "/pids.max")
                limits.pidsMax = text == "max" ? nil : UInt64(text)
            }
            if let (dir, _) = directory(for: "cpuset") {
                limits.cpusetCpus = try CgroupFS.read(dir + "/cpuset.cpus")
                limits.cpusetMems = try CgroupFS.read(dir + "/cpuset.mems")
            }
        } catch let error as SystemError {
            throw .system(error)
        } catch let error as CgroupError {
            throw error
        } catch {
            throw .unparsable(path: allDirectories.first ?? name, content: "\(error)")
        }
        return limits
    }

    private static func readBytes(_ path: String) throws(SystemError) -> UInt64? {
        let text = try CgroupFS.read(path)
        guard text != "max", let value = UInt64(text), value < v1Unlimited else { return nil }
        return value
    }

    // MARK: Membership and events

    /// The pids in the group, across every hierarchy, sorted and without duplicates.
    public func memberPIDs() throws(CgroupError) -> [Int32] {
        var all = Set<Int32>()
        do {
            for dir in allDirectories { all.formUnion(try CgroupFS.pids(dir + "/cgroup.procs")) }
        } catch {
            throw .system(error)
        }
        return all.sorted()
    }

    /// Moves process `pid` into every directory of the group (cgroup2 first).
    public func addProcess(_ pid: Int32) throws(CgroupError) {
        do {
            for dir in allDirectories { try CgroupFS.write("\(pid)", to: dir + "/cgroup.procs") }
        } catch {
            throw .system(error)
        }
    }

    /// How many processes of the group the OOM killer has killed (v2 `memory.events` `oom_kill`,
    /// v1 `memory.oom_control` `oom_kill`); nil when the group has no memory controller or the
    /// group is gone.
    /// Call after a VMM exits by SIGKILL to tell an OOM kill from any other.
    public func oomKillCount() throws(CgroupError) -> UInt64? {
        guard let (dir, isV2) = directory(for: "memory") else { return nil }
        let path = dir + (isV2 ? "/memory.events" : "/memory.oom_control")
        let text: String
        do {
            text = try readProcFile(path)
        } catch where error.errno == ENOENT {
            return nil
        } catch {
            throw .system(error)
        }
        guard let count = CgroupFS.keyedValue("oom_kill", in: text) else {
            throw .unparsable(path: path, content: text)
        }
        return count
    }

    /// Whether the OOM killer has killed a process of this group since it was created.
    public func wasOOMKilled() throws(CgroupError) -> Bool {
        (try oomKillCount() ?? 0) > 0
    }

    // MARK: Teardown

    /// SIGKILLs every process in the group and returns once the group is empty.
    ///
    /// Uses `cgroup.kill` where cgroup2 offers it and also signals every listed pid through a pidfd,
    /// then waits on those pidfds (`poll`, no sleeping) until each process has exited; new pids
    /// forked meanwhile are caught by the next round. Blocks for at most `timeout` per round: call it
    /// from a dedicated thread, not from Swift's cooperative pool.
    public func killAll(timeout: Duration = .seconds(5), rounds: Int = 8) throws(CgroupError) {
        for _ in 0..<rounds {
            let pids = try memberPIDs()
            if pids.isEmpty { return }
            if let v2Directory, CgroupFS.exists(v2Directory + "/cgroup.kill") {
                try? CgroupFS.write("1", to: v2Directory + "/cgroup.kill")
            }
            var pidfds: [pollfd] = []
            defer { for p in pidfds { _ = Glibc.close(p.fd) } }
            for pid in pids {
                let fd = qx_pidfd_open(pid, 0)
                if fd < 0 { continue }
                _ = qx_pidfd_send_signal(fd, SIGKILL)
                pidfds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
            }
            try Self.waitReadable(pidfds, timeout: timeout)
        }
        let remaining = try memberPIDs()
        if !remaining.isEmpty { throw .killIncomplete(remaining: remaining) }
    }

    /// Polls until every pidfd is readable (its process exited) or `timeout` passes.
    private static func waitReadable(_ fds: [pollfd], timeout: Duration) throws(CgroupError) {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var pending = fds
        while !pending.isEmpty {
            let left = clock.now.duration(to: deadline)
            if left <= .zero { return }
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            let n = pending.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), ms) }
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                throw .system(SystemError("poll(pidfds)", errno: code))
            }
            pending.removeAll { $0.revents != 0 }
            for i in pending.indices { pending[i].revents = 0 }
        }
    }

    /// Removes the group's directory in every hierarchy. A directory already gone is fine; one
    /// still holding processes gives `.busy` with their pids (use `killAll` first). The shared
    /// parent stays.
    public func remove() throws(CgroupError) {
        var firstError: CgroupError?
        for dir in allDirectories {
            do {
                try CgroupFS.removeDirectory(dir)
            } catch where error.errno == EBUSY {
                let pids = (try? CgroupFS.pids(dir + "/cgroup.procs")) ?? []
                if firstError == nil { firstError = .busy(path: dir, pids: pids) }
            } catch {
                if firstError == nil { firstError = .system(error) }
            }
        }
        if let firstError { throw firstError }
    }
}
