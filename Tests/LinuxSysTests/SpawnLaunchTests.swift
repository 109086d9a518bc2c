import CShims
import Glibc
import Testing
@testable import LinuxSys

@Suite(.enabled(if: SpawnFixture.isRoot, "changing uid, joining cgroups and building jails need root"))
struct SpawnLaunchTests {
    @Test func defaultPlanConfinesTheChild() async throws {
        var plan = SpawnFixture.probePlan("block")
        plan.environment = ["QX_A": "1", "PATH": "/usr/bin"]
        var extra = try Pipe()
        defer { extra.closeRead() }
        plan.fileDescriptors[7] = extra.write
        try await SpawnFixture.withBlockingProbe(plan) { pid in
            let status = try SpawnFixture.status(pid)
            for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                #expect(status[set] == "0000000000000000", "\(set)")
            }
            #expect(status["NoNewPrivs"] == "1")
            #expect(status["Seccomp"] == "2")
            #expect(status["Uid"] == "65534\t65534\t65534\t65534")
            #expect(status["Gid"] == "65534\t65534\t65534\t65534")
            #expect(status["Groups"] == "")
            #expect(SpawnFixture.directoryEntries("/proc/\(pid)/fd") == ["0", "1", "2", "7"])
            #expect(SpawnFixture.readLink("/proc/\(pid)/fd/2") == "/dev/null")
            #expect(try readProcFile("/proc/\(pid)/environ") == "PATH=/usr/bin\u{0}QX_A=1\u{0}")
            let stat = try readProcFile("/proc/\(pid)/stat")
            let afterName = stat[stat.index(after: stat.lastIndex(of: ")") ?? stat.startIndex)...].split(separator: " ")
            #expect(afterName.count > 3 && afterName[3] == "\(pid)", "setsid: the probe leads its own session")
        }
    }

    @Test func resourceLimitsAreInPlace() async throws {
        var plan = SpawnFixture.probePlan("block")
        plan.resourceLimits = [.core: ResourceLimit(0), .nofile: ResourceLimit(soft: 256, hard: 512),
                               .memlock: ResourceLimit(soft: 1 << 20, hard: 2 << 20)]
        try await SpawnFixture.withBlockingProbe(plan) { pid in
            let limits = try readProcFile("/proc/\(pid)/limits").split(separator: "\n")
            func limit(_ name: String) -> [Substring] {
                guard let line = limits.first(where: { $0.hasPrefix(name) }) else { return [] }
                return line.dropFirst(name.count).split(separator: " ")
            }
            #expect(limit("Max core file size").prefix(2) == ["0", "0"])
            #expect(limit("Max open files").prefix(2) == ["256", "512"])
            #expect(limit("Max locked memory").prefix(2) == ["1048576", "2097152"])
        }
    }

    @Test(arguments: [(SeccompPolicy?.some(.vmmDefault), "errno=1\n"), (nil, "errno=0\n")])
    func deniedSyscallFailsWithEPERM(policy: SeccompPolicy?, expected: String) async throws {
        var plan = SpawnFixture.probePlan("syscall", "unshare")
        plan.seccomp = policy
        var stdout = try Pipe()
        plan.fileDescriptors[1] = stdout.write
        let process = try await Launcher.launch(plan)
        stdout.closeWrite()
        let output = await SpawnFixture.readToEnd(stdout.read)
        #expect(output == expected)
        #expect(try await SpawnFixture.exit(of: process) == .exited(0))
    }

    @Test func killModeEndsTheProcessWithSIGSYS() async throws {
        var plan = SpawnFixture.probePlan("syscall", "unshare")
        plan.seccomp = SeccompPolicy(defaultAction: .kill, rules: SeccompPolicy.vmmDefault.rules)
        let process = try await Launcher.launch(plan)
        #expect(try await SpawnFixture.exit(of: process) == .signaled(SIGSYS))
    }

    @Test func capabilitiesCanBeKeptThroughExec() async throws {
        var plan = SpawnFixture.probePlan("block")
        plan.capabilities = .keeping([.netAdmin])
        try await SpawnFixture.withBlockingProbe(plan) { pid in
            let status = try SpawnFixture.status(pid)
            let netAdmin = String(1 << 12, radix: 16)
            for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                #expect(status[set]?.drop(while: { $0 == "0" }) == Substring(netAdmin), "\(set)")
            }
            #expect(status["Uid"] == "65534\t65534\t65534\t65534")
        }
    }

    @Test(.enabled(if: access("/sys/fs/cgroup/pids/cgroup.procs", W_OK) == 0, "needs the cgroup v1 pids hierarchy"))
    func joinsCgroupV1() async throws {
        let name = SpawnFixture.unique("qx-spawn")
        let directory = "/sys/fs/cgroup/pids/\(name)"
        try #require(mkdir(directory, 0o755) == 0)
        defer { rmdir(directory) }
        var plan = SpawnFixture.probePlan("block")
        plan.cgroup = CgroupPlacement(v1ProcsFiles: [directory + "/cgroup.procs"])
        try await SpawnFixture.withBlockingProbe(plan) { pid in
            let groups = try readProcFile("/proc/\(pid)/cgroup")
            #expect(groups.split(separator: "\n").contains { $0.hasSuffix(":pids:/\(name)") }, "\(groups)")
            let mine = try readProcFile("/proc/self/cgroup")
            #expect(!mine.contains(name), "only the child moves")
        }
    }

    /// A fresh v1 cpuset group has no CPUs and no memory nodes: the kernel refuses tasks (ENOSPC).
    @Test(.enabled(if: access("/sys/fs/cgroup/cpuset/cgroup.procs", W_OK) == 0, "needs the cgroup v1 cpuset hierarchy"))
    func cgroupRefusingTheChildFailsTheCgroupStep() async throws {
        let directory = "/sys/fs/cgroup/cpuset/\(SpawnFixture.unique("qx-spawn"))"
        try #require(mkdir(directory, 0o755) == 0)
        defer { rmdir(directory) }
        var plan = SpawnFixture.probePlan("exit", "0")
        plan.cgroup = CgroupPlacement(v1ProcsFiles: [directory + "/cgroup.procs"])
        await #expect(throws: LaunchError.childStep(.cgroupV1, errno: ENOSPC)) {
            _ = try await Launcher.launch(plan)
        }
    }

    static let cgroup2Root: String? = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].first {
        access($0 + "/cgroup.procs", W_OK) == 0 && access($0 + "/cgroup.controllers", F_OK) == 0
    }

    @Test(.enabled(if: cgroup2Root != nil, "needs a cgroup2 mount"))
    func clonesIntoCgroupV2() async throws {
        let name = SpawnFixture.unique("qx-spawn")
        let directory = "\(Self.cgroup2Root ?? "")/\(name)"
        try #require(mkdir(directory, 0o755) == 0)
        defer { rmdir(directory) }
        var plan = SpawnFixture.probePlan("block")
        plan.cgroup = CgroupPlacement(v2Directory: directory)
        try await SpawnFixture.withBlockingProbe(plan) { pid in
            let groups = try readProcFile("/proc/\(pid)/cgroup")
            #expect(groups.split(separator: "\n").contains("0::/\(name)"), "\(groups)")
        }
    }

    @Test func newPIDNamespaceMakesTheProgramPidOne() async throws {
        var plan = SpawnFixture.probePlan("block")
        plan.newPIDNamespace = true
        try await SpawnFixture.withBlockingProbe(plan) { pid in
            let status = try SpawnFixture.status(pid)
            #expect(status["NSpid"] == "\(pid)\t1")
        }
    }

    @Test func jailShowsOnlyWhatWasBindMounted() async throws {
        let root = "/tmp/\(SpawnFixture.unique("qx-jail"))"
        try #require(mkdir(root, 0o755) == 0)
        defer { SpawnFixture.removeTree(root) }
        let devices = JailPlan.presentDevices()
        let swiftRuntime = "/opt/swift/usr/lib/swift/linux"
        var plan = SpawnPlan(executable: "/probe", arguments: ["/probe", "block"])
        plan.jail = JailPlan(root: root, mounts: [
            BindMount(source: SpawnFixture.probePath, target: "/probe"),
            BindMount("/lib"), BindMount("/lib64"), BindMount(swiftRuntime),
        ], devices: devices, mountProc: true)
        plan.newPIDNamespace = true
        try await SpawnFixture.withBlockingProbe(plan) { pid in
            let expectedTop = Set(["probe", "lib", "lib64", "opt", "proc"] + (devices.isEmpty ? [] : ["dev"]))
            #expect(SpawnFixture.directoryEntries("/proc/\(pid)/root") == expectedTop)
            #expect(access("/proc/\(pid)/root/etc/passwd", F_OK) != 0)
            let mountPoints = try readProcFile("/proc/\(pid)/mountinfo").split(separator: "\n").map { line in
                let fields = line.split(separator: " ")
                return (point: fields.count > 4 ? String(fields[4]) : "", options: fields.count > 5 ? String(fields[5]) : "")
            }
            #expect(Set(mountPoints.map(\.point)) == Set(["/", "/probe", "/lib", "/lib64", swiftRuntime, "/proc"] + devices))
            #expect(SpawnFixture.directoryEntries("/proc/\(pid)/root/proc").filter { $0.allSatisfy(\.isNumber) } == ["1"],
                    "the jail's /proc shows only the VMM's PID namespace")
            #expect(mountPoints.first { $0.point == "/probe" }?.options.hasPrefix("ro,") == true)
            #expect(mountPoints.first { $0.point == "/" }?.options.hasPrefix("rw,") == true)
            for device in devices {
                #expect(mountPoints.first { $0.point == device }?.options.hasPrefix("rw,") == true, "\(device)")
            }
            #expect(SpawnFixture.directoryEntries(root).isEmpty, "the mount points live in the jail's own tmpfs")
        }
    }

    /// Launches from many threads at once share nothing but the read-only seccomp program: each
    /// child gets its own arguments and exits with its own status.
    @Test func concurrentLaunchesKeepTheirOwnPlans() async throws {
        let exits = try await withThrowingTaskGroup(of: (Int32, SpawnedProcess.Exit).self) { group in
            for code in Int32(0)..<48 {
                group.addTask {
                    let process = try await Launcher.launch(SpawnFixture.probePlan("exit", "\(code)"))
                    return (code, try await SpawnFixture.exit(of: process))
                }
            }
            var exits: [Int32: SpawnedProcess.Exit] = [:]
            for try await (code, exit) in group { exits[code] = exit }
            return exits
        }
        #expect(exits.count == 48)
        for (code, exit) in exits { #expect(exit == .exited(code)) }
    }

    static let failures: [(String, @Sendable (inout SpawnPlan) -> Void, LaunchStep, Int32)] = [
        ("missing binary", { $0.executable = "/nonexistent/qx-probe" }, .exec, ENOENT),
        ("missing cgroup", { $0.cgroup = CgroupPlacement(v1ProcsFiles: ["/sys/fs/cgroup/pids/qx-absent-\(getpid())/cgroup.procs"]) }, .cgroupV1, ENOENT),
        ("cgroup file outside cgroupfs", { $0.cgroup = CgroupPlacement(v1ProcsFiles: ["/proc/self/cgroup.procs"]) }, .cgroupV1, ENOENT),
        ("missing jail root", { $0.jail = JailPlan(root: "/nonexistent/qx-jail") }, .bindMounts, ENOENT),
        ("missing jail source", { $0.jail = JailPlan(root: "/tmp", mounts: [BindMount("/nonexistent/kernel")]) }, .bindMounts, ENOENT),
        ("missing working directory", { $0.workingDirectory = "/nonexistent" }, .workingDirectory, ENOENT),
        ("working directory closed to the VMM user", { $0.workingDirectory = "/root" }, .workingDirectory, EACCES),
        ("descriptor not open", { $0.fileDescriptors[3] = 1000 }, .fileDescriptors, EBADF),
        ("limit above fs.nr_open", { $0.resourceLimits[.nofile] = ResourceLimit(1 << 30) }, .resourceLimits, EPERM),
    ]

    @Test(arguments: failures)
    func failingStepIsNamed(_ name: String, _ change: @Sendable (inout SpawnPlan) -> Void, step: LaunchStep, errno expected: Int32) async {
        var plan = SpawnFixture.probePlan("exit", "0")
        change(&plan)
        await #expect(throws: LaunchError.childStep(step, errno: expected), "\(name)") {
            _ = try await Launcher.launch(plan)
        }
    }

    @Test func invalidPlanAndMissingCgroupV2AreReportedBeforeClone() async {
        var plan = SpawnFixture.probePlan("exit", "0")
        plan.user = UserIdentity(uid: UInt32.max, gid: 0)
        do {
            _ = try await Launcher.launch(plan)
            Issue.record("launched with uid -1")
        } catch {
            guard case .invalidPlan(let planError) = error else { Issue.record("\(error)"); return }
            #expect(planError.issues.map(\.field) == ["spawn.user.uid"])
        }
        plan.user = .nobody
        plan.cgroup = CgroupPlacement(v2Directory: "/sys/fs/cgroup/unified/qx-absent-\(getpid())")
        do {
            _ = try await Launcher.launch(plan)
            Issue.record("launched into a missing cgroup")
        } catch {
            guard case .parent(let step, let systemError) = error else { Issue.record("\(error)"); return }
            #expect(step == .clone)
            #expect(systemError.errno == ENOENT)
        }
    }

    /// In a process of its own, so no other test's descriptors or children disturb the count:
    /// failing launches leave no descriptor and no child (zombie or not) behind.
    @Test func failedLaunchesLeaveNothingBehind() async {
        await #expect(processExitsWith: .success) {
            // Once before counting, so one-time initialisation (runtime, caches) is not mistaken for a leak.
            if !SpawnLaunchTests.launchesAndExits(code: 3) { exit(1) }
            let before = SpawnFixture.directoryEntries("/proc/self/fd").count
            for (_, change, step, expected) in SpawnLaunchTests.failures {
                var plan = SpawnFixture.probePlan("exit", "0")
                change(&plan)
                do throws(LaunchError) {
                    _ = try Launcher.launchBlocking(plan)
                    exit(2)
                } catch {
                    if error != LaunchError.childStep(step, errno: expected) { exit(3) }
                }
            }
            if !SpawnLaunchTests.launchesAndExits(code: 7) { exit(4) }
            let after = SpawnFixture.directoryEntries("/proc/self/fd").count
            if after != before { exit(6) }
            var info = siginfo_t()
            if waitid(P_ALL, 0, &info, WEXITED | WNOHANG) == 0 || errno != ECHILD { exit(7) }
            exit(0)
        }
    }

    /// Launches `qx-probe exit code`, waits, and drops the process (closing its pidfd).
    static func launchesAndExits(code: Int32) -> Bool {
        guard let process = try? Launcher.launchBlocking(SpawnFixture.probePlan("exit", "\(code)")) else { return false }
        return (try? process.waitBlocking()) == .exited(code)
    }
}
