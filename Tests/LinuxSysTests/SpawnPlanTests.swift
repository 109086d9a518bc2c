import CShims
import Testing
@testable import LinuxSys

@Suite struct SpawnPlanTests {
    @Test func defaultPlanIsConfinedAndValid() throws {
        let plan = SpawnPlan(executable: "/usr/bin/true")
        #expect(plan.issues().isEmpty)
        #expect(plan.arguments == ["/usr/bin/true"])
        #expect(plan.environment.isEmpty)
        #expect(plan.user == .nobody)
        #expect(plan.capabilities == .none)
        #expect(plan.noNewPrivileges)
        #expect(plan.seccomp == .vmmDefault)
        #expect(plan.resourceLimits[.core] == ResourceLimit(0))
        #expect(plan.newSession)
        #expect(plan.jail == nil)
        #expect(!plan.newPIDNamespace)
    }

    @Test func environmentIsSortedAndExact() {
        let plan = SpawnPlan(executable: "/x", environment: ["B": "2", "A": "1=1", "C": ""])
        #expect(plan.environmentStrings == ["A=1=1", "B=2", "C="])
    }

    static let badPlans: [(String, @Sendable (inout SpawnPlan) -> Void)] = [
        ("spawn.executable", { $0.executable = "bin/true" }),
        ("spawn.executable", { $0.executable = "/usr/../bin/true" }),
        ("spawn.arguments", { $0.arguments = [] }),
        ("spawn.arguments[1]", { $0.arguments = ["a", "b\u{0}c"] }),
        ("spawn.environment", { $0.environment = ["A=B": "1"] }),
        ("spawn.fileDescriptors[300]", { $0.fileDescriptors = [300: 4] }),
        ("spawn.fileDescriptors[3]", { $0.fileDescriptors = [3: -1] }),
        ("spawn.workingDirectory", { $0.workingDirectory = "relative" }),
        ("spawn.user.uid", { $0.user = UserIdentity(uid: UInt32.max, gid: 1) }),
        ("spawn.user.gid", { $0.user = UserIdentity(uid: 1, gid: UInt32.max) }),
        ("spawn.resourceLimits[RLIMIT_NOFILE]", { $0.resourceLimits[.nofile] = ResourceLimit(soft: 10, hard: 5) }),
        ("spawn.capabilities.effective", { $0.capabilities = CapabilityPlan(bounding: [.netAdmin], effective: [.netAdmin]) }),
        ("spawn.capabilities.ambient", { $0.capabilities = CapabilityPlan(bounding: [.netAdmin], permitted: [.netAdmin], ambient: [.netAdmin]) }),
        ("spawn.capabilities.permitted", { $0.capabilities = CapabilityPlan(permitted: [.kill]) }),
        ("spawn.seccomp", { $0.noNewPrivileges = false }),
        ("spawn.seccomp.rules[0].reason", { $0.seccomp = SeccompPolicy(defaultAction: .errno, rules: [SeccompRule("read", reason: " ")]) }),
        ("spawn.seccomp.rules", { $0.seccomp = SeccompPolicy(defaultAction: .kill, rules: [SeccompRule("execve", reason: "start")]) }),
        ("spawn.cgroup.v2Directory", { $0.cgroup = CgroupPlacement(v2Directory: "sys/fs/cgroup/x") }),
        ("spawn.cgroup.v1ProcsFiles[0]", { $0.cgroup = CgroupPlacement(v1ProcsFiles: ["/sys/fs/cgroup/pids/x/tasks"]) }),
        ("spawn.jail.root", { $0.jail = JailPlan(root: "/") }),
        ("spawn.jail.root", { $0.jail = JailPlan(root: "jail") }),
        ("spawn.jail.mounts[1].target", { $0.jail = JailPlan(root: "/j", mounts: [BindMount("/a"), BindMount(source: "/b", target: "/./a")]) }),
        ("spawn.jail.mounts[0].target", { $0.jail = JailPlan(root: "/j", mounts: [BindMount(source: "/a", target: "/")]) }),
        ("spawn.jail.devices[0]", { $0.jail = JailPlan(root: "/j", devices: ["/etc/kvm"]) }),
        ("spawn.jail.mountProc", { $0.jail = JailPlan(root: "/j", mountProc: true) }),
    ]

    @Test(arguments: badPlans)
    func invalidFieldIsNamed(field: String, change: @Sendable (inout SpawnPlan) -> Void) {
        var plan = SpawnPlan(executable: "/usr/bin/true")
        change(&plan)
        let issues = plan.issues()
        #expect(issues.map(\.field).contains(field), "\(issues)")
        #expect(throws: SpawnPlanError.self) { try plan.validate() }
    }

    @Test func everyIssueIsReportedAtOnce() {
        var plan = SpawnPlan(executable: "relative", arguments: [])
        plan.workingDirectory = "also-relative"
        let fields = Set(plan.issues().map(\.field))
        #expect(fields == ["spawn.executable", "spawn.arguments", "spawn.workingDirectory"])
        let rendered = plan.issues().first { $0.field == "spawn.executable" }?.description
        #expect(rendered == "spawn.executable: \"relative\" is not an absolute path")
    }

    @Test func keepingCapabilitiesIsConsistent() {
        var plan = SpawnPlan(executable: "/x")
        plan.capabilities = .keeping([.netAdmin, .sysNice])
        #expect(plan.issues().isEmpty)
    }

    @Test func jailHostPaths() {
        let jail = JailPlan(root: "/var/lib/qarax/vm1/")
        #expect(jail.hostPath("/dev/kvm") == "/var/lib/qarax/vm1/dev/kvm")
        #expect(jail.hostPath("boot/./vmlinux") == "/var/lib/qarax/vm1/boot/vmlinux")
    }
}

@Suite struct CapabilityTests {
    @Test func namesMatchTheKernel() {
        #expect(Capability.netAdmin.description == "CAP_NET_ADMIN")
        #expect(Capability.dacReadSearch.description == "CAP_DAC_READ_SEARCH")
        #expect(Capability.checkpointRestore.description == "CAP_CHECKPOINT_RESTORE")
        #expect(Capability(name: "cap_sys_admin") == .sysAdmin)
        #expect(Capability(name: "NET_RAW") == .netRaw)
        #expect(Capability(name: "CAP_NOPE") == nil)
        #expect(Capability.allCases.map(\.rawValue) == Array(0...40))
    }

    @Test func setsAreBitmasks() {
        var set: CapabilitySet = [.chown, .netAdmin]
        #expect(set.bits == (1 << 0) | (1 << 12))
        set.remove(.chown)
        #expect(set.capabilities == [.netAdmin])
        #expect(CapabilitySet.all.bits == (1 << 41) - 1)
        #expect(set.description == "[CAP_NET_ADMIN]")
    }

    @Test func launchStepsMatchTheCShim() {
        #expect(LaunchStep.signals.rawValue == Int32(QX_STEP_SIGNALS.rawValue))
        #expect(LaunchStep.cgroupV1.rawValue == Int32(QX_STEP_CGROUP_V1.rawValue))
        #expect(LaunchStep.fileDescriptors.rawValue == Int32(QX_STEP_FDS.rawValue))
        #expect(LaunchStep.bindMounts.rawValue == Int32(QX_STEP_BIND_MOUNTS.rawValue))
        #expect(LaunchStep.pivotRoot.rawValue == Int32(QX_STEP_PIVOT_ROOT.rawValue))
        #expect(LaunchStep.setuid.rawValue == Int32(QX_STEP_SETUID.rawValue))
        #expect(LaunchStep.capabilities.rawValue == Int32(QX_STEP_CAPSET.rawValue))
        #expect(LaunchStep.workingDirectory.rawValue == Int32(QX_STEP_CHDIR.rawValue))
        #expect(LaunchStep.seccomp.rawValue == Int32(QX_STEP_SECCOMP.rawValue))
        #expect(LaunchStep.exec.rawValue == Int32(QX_STEP_EXEC.rawValue))
        #expect(LaunchError.childStep(.setuid, errno: 1).description == "child step 13 (setuid) failed: EPERM")
    }
}
