import Glibc
import Testing
import CShims
@testable import LinuxSys

/// Real cgroups on this machine: root creates groups under `qarax`, with unique names per test.
@Suite(.enabled(if: CgroupFixture.canManage, "needs root and a writable cgroup filesystem"))
struct CgroupTests {
    @Test func createWritesLimitsIntoTheKernelFiles() throws {
        let manager = try CgroupManager.detect()
        let limits = CgroupLimits(cpuQuota: 50_000, cpuPeriod: 100_000, cpuWeight: 50,
                                  memoryMax: 256 << 20, memoryHigh: 128 << 20, pidsMax: 64)
        try CgroupFixture.withGroup(manager, limits: limits) { group in
            let (cpuDir, cpuV2) = try #require(group.directory(for: "cpu"))
            if cpuV2 {
                #expect(try CgroupFS.read(cpuDir + "/cpu.max") == "50000 100000")
                #expect(try CgroupFS.read(cpuDir + "/cpu.weight") == "50")
            } else {
                #expect(try CgroupFS.read(cpuDir + "/cpu.cfs_quota_us") == "50000")
                #expect(try CgroupFS.read(cpuDir + "/cpu.cfs_period_us") == "100000")
                #expect(try CgroupFS.read(cpuDir + "/cpu.shares") == "512")
            }
            let (memDir, memV2) = try #require(group.directory(for: "memory"))
            #expect(try CgroupFS.read(memDir + (memV2 ? "/memory.max" : "/memory.limit_in_bytes")) == "\(256 << 20)")
            #expect(try CgroupFS.read(memDir + (memV2 ? "/memory.high" : "/memory.soft_limit_in_bytes")) == "\(128 << 20)")
            let (pidsDir, _) = try #require(group.directory(for: "pids"))
            #expect(try CgroupFS.read(pidsDir + "/pids.max") == "64")
            #expect(try group.readLimits() == limits)
            #expect(try group.memberPIDs().isEmpty)
            #expect(try group.oomKillCount() == 0)
            #expect(try !group.wasOOMKilled())
        }
    }

    @Test func withoutLimitsReadsBackUnlimited() throws {
        let manager = try CgroupManager.detect()
        try CgroupFixture.withGroup(manager, limits: .none) { group in
            let back = try group.readLimits()
            #expect(back.cpuQuota == nil)
            #expect(back.memoryMax == nil)
            #expect(back.memoryHigh == nil)
            #expect(back.pidsMax == nil)
            #expect(back.cpuWeight == 100)
        }
    }

    @Test func cpusetIsInitialisedFromTheParentOrAsAsked() throws {
        let manager = try CgroupManager.detect()
        try CgroupFixture.withGroup(manager, limits: CgroupLimits(cpusetCpus: "0", cpusetMems: "0")) { group in
            let (dir, _) = try #require(group.directory(for: "cpuset"))
            #expect(try CgroupFS.read(dir + "/cpuset.cpus") == "0")
            #expect(try CgroupFS.read(dir + "/cpuset.mems") == "0")
            let pid = try CgroupFixture.spawn(["/bin/sleep", "1000"])
            defer { CgroupFixture.reap(pid) }
            try group.addProcess(pid)
            #expect(try CgroupFixture.cgroupLines(of: pid).contains { $0.hasSuffix("cpuset:/\(manager.parent)/\(group.name)") })
            try group.killAll()
        }
    }

    @Test func openFindsAnEarlierGroupIncludingItsCpuset() throws {
        let manager = try CgroupManager.detect()
        let created = try manager.create(name: CgroupFixture.uniqueName(), limits: CgroupLimits(cpusetCpus: "0"))
        defer { try? created.remove() }
        let opened = try manager.open(name: created.name)
        #expect(opened == created)
        try opened.remove()
        #expect(created.allDirectories.allSatisfy { !CgroupFS.exists($0) })
        #expect(try manager.open(name: created.name).directory(for: "cpuset") == nil)
    }

    @Test func cpusetOutsideTheHostIsAFieldError() throws {
        let manager = try CgroupManager.detect()
        let name = CgroupFixture.uniqueName()
        #expect(throws: CgroupError.invalidLimit(field: "cpuset_cpus", value: "'0-4095'",
                                                 reason: "is not within the host's set '\(try CgroupFixture.hostCpus())'")) {
            try manager.create(name: name, limits: CgroupLimits(cpusetCpus: "0-4095"))
        }
        #expect(try manager.plan(name: name).allDirectories.allSatisfy { !CgroupFS.exists($0) })
    }

    @Test func badLimitsCreateNothing() throws {
        let manager = try CgroupManager.detect()
        let name = CgroupFixture.uniqueName()
        #expect(throws: CgroupError.invalidLimit(field: "memory_max", value: "1000",
                                                 reason: "is below the minimum 1048576 (1 MiB)")) {
            try manager.create(name: name, limits: CgroupLimits(memoryMax: 1000))
        }
        #expect(try manager.plan(name: name).allDirectories.allSatisfy { !CgroupFS.exists($0) })
    }

    @Test func childPlacedThroughThePlacementShowsInProcCgroup() throws {
        let manager = try CgroupManager.detect()
        try CgroupFixture.withGroup(manager, limits: CgroupLimits(pidsMax: 16)) { group in
            let pid = try CgroupFixture.spawn(["/bin/sleep", "1000"])
            defer { CgroupFixture.reap(pid) }
            // What the launcher's child does: join the v2 directory, then each v1 cgroup.procs.
            let placement = group.placement
            if let v2 = placement.v2Directory { try CgroupFS.write("\(pid)", to: v2 + "/cgroup.procs") }
            for file in placement.v1ProcsFiles { try CgroupFS.write("\(pid)", to: file) }

            let lines = try CgroupFixture.cgroupLines(of: pid)
            let suffix = "/\(manager.parent)/\(group.name)"
            for dir in group.v1Directories {
                for controller in dir.controllers {
                    #expect(lines.contains { line in
                        let parts = line.split(separator: ":", maxSplits: 2)
                        return parts.count == 3 && parts[1].split(separator: ",").contains(Substring(controller))
                            && parts[2] == suffix
                    }, "\(controller) in \(lines)")
                }
            }
            if placement.v2Directory != nil { #expect(lines.contains("0::\(suffix)")) }
            #expect(try group.memberPIDs() == [pid])

            #expect(throws: CgroupError.busy(path: group.allDirectories[0], pids: [pid])) { try group.remove() }
            try group.killAll()
            #expect(try group.memberPIDs().isEmpty)
            #expect(CgroupFixture.reap(pid) == .signaled(SIGKILL))
        }
    }

    @Test func killAllEmptiesAGroupOfSeveralProcesses() throws {
        let manager = try CgroupManager.detect()
        try CgroupFixture.withGroup(manager, limits: .none) { group in
            var pids: [Int32] = []
            defer { for pid in pids { CgroupFixture.reap(pid) } }
            for _ in 0..<4 {
                let pid = try CgroupFixture.spawn(["/bin/sleep", "1000"])
                pids.append(pid)
                try group.addProcess(pid)
            }
            #expect(try group.memberPIDs() == pids.sorted())
            try group.killAll()
            #expect(try group.memberPIDs().isEmpty)
        }
    }

    @Test func memoryHungryChildIsOOMKilledAndCounted() throws {
        let manager = try CgroupManager.detect()
        try CgroupFixture.withGroup(manager, limits: CgroupLimits(memoryMax: 8 << 20)) { group in
            // dd opens its output before allocating and filling its 64 MiB buffer; opening a FIFO for
            // writing blocks until a reader comes, which holds dd until it has joined the group.
            let fifo = "/tmp/qx-oom-\(group.name)"
            #expect(mkfifo(fifo, 0o600) == 0)
            defer { unlink(fifo) }
            let pid = try CgroupFixture.spawn(["/bin/dd", "if=/dev/zero", "of=\(fifo)", "bs=64M", "count=1"])
            defer { CgroupFixture.reap(pid) }
            try group.addProcess(pid)
            let reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            #expect(reader >= 0)
            defer { close(reader) }
            #expect(CgroupFixture.reap(pid) == .signaled(SIGKILL))
            #expect(try group.oomKillCount() == 1)
            #expect(try group.wasOOMKilled())
        }
    }

    @Test func removeLeavesNothingAndLeavesTheHostAlone() throws {
        let before = try CgroupFixture.cgroupLines(of: getpid())
        let manager = try CgroupManager.detect()
        let group = try manager.create(name: CgroupFixture.uniqueName(), limits: CgroupLimits(memoryMax: 64 << 20))
        #expect(group.allDirectories.allSatisfy { CgroupFS.exists($0) })
        try group.remove()
        #expect(group.allDirectories.allSatisfy { !CgroupFS.exists($0) })
        try group.remove()
        #expect(try CgroupFixture.cgroupLines(of: getpid()) == before)
    }

    @Test func existingGroupWithProcessesIsInUse() throws {
        let manager = try CgroupManager.detect()
        try CgroupFixture.withGroup(manager, limits: CgroupLimits(pidsMax: 5)) { group in
            let pid = try CgroupFixture.spawn(["/bin/sleep", "1000"])
            defer { CgroupFixture.reap(pid) }
            try group.addProcess(pid)
            #expect(throws: CgroupError.inUse(path: group.allDirectories[0], pids: [pid])) {
                try manager.create(name: group.name, limits: .none)
            }
            try group.killAll()
            let again = try manager.create(name: group.name, limits: CgroupLimits(memoryMax: 32 << 20))
            #expect(try again.readLimits().memoryMax == 32 << 20)
            #expect(try again.readLimits().pidsMax == nil, "no limit survives from the earlier group")
        }
    }
}

enum CgroupFixture {
    static let canManage: Bool = {
        guard getuid() == 0, let manager = try? CgroupManager.detect() else { return false }
        guard let group = try? manager.plan(name: "probe") else { return false }
        return group.v1Directories.allSatisfy { access($0.mountPoint, W_OK) == 0 }
            && (group.v2Directory == nil || access(manager.topology.v2?.mountPoint ?? "/", W_OK) == 0)
    }()

    static func uniqueName() -> String {
        "test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    static func hostCpus() throws -> String {
        let manager = try CgroupManager.detect()
        switch manager.topology.location(of: "cpuset") {
        case let .v1(mountPoint, _)?: return try CgroupFS.read(mountPoint + "/cpuset.cpus")
        case let .v2(mountPoint)?: return try CgroupFS.read(mountPoint + "/cpuset.cpus.effective")
        case nil: return ""
        }
    }

    /// Creates a uniquely named group, runs `body`, then kills what is left and removes it.
    static func withGroup(_ manager: CgroupManager, limits: CgroupLimits,
                          _ body: (VMCgroup) throws -> Void) throws {
        let group = try manager.create(name: uniqueName(), limits: limits)
        defer {
            try? group.killAll()
            try? group.remove()
            #expect(group.allDirectories.allSatisfy { !CgroupFS.exists($0) })
        }
        try body(group)
    }

    static func cgroupLines(of pid: Int32) throws -> [String] {
        try readProcFile("/proc/\(pid)/cgroup").split(separator: "\n").map(String.init)
    }

    /// posix_spawn with stdio on /dev/null, no shell.
    static func spawn(_ argv: [String]) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in 0...2 {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ)
        if rc != 0 { throw SystemError("posix_spawn \(argv[0])", errno: rc) }
        return pid
    }

    enum Exit: Equatable { case exited(Int32), signaled(Int32), timedOut, gone }

    /// Waits (bounded, on the pidfd) for `pid` to exit and reaps it; kills it first if it is still
    /// running after 20 s. Safe to call twice.
    @discardableResult
    static func reap(_ pid: Int32) -> Exit {
        let fd = qx_pidfd_open(pid, 0)
        if fd < 0 { return .gone }
        defer { close(fd) }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        var ready: Int32
        repeat { ready = poll(&p, 1, 20_000) } while ready < 0 && errno == EINTR
        if ready == 0 { _ = qx_pidfd_send_signal(fd, SIGKILL) }
        var status: Int32 = 0
        guard waitpid(pid, &status, 0) == pid else { return .gone }
        if ready == 0 { return .timedOut }
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }
}
