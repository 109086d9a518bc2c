import Foundation
import Testing
@testable import LinuxSys

@Suite struct CgroupTopologyTests {
    static let unifiedHost = """
        22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
        26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
        30 28 0:26 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
        """

    static let hybridHost = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
        34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """

    static let legacyHost = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        33 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        34 31 0:31 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        90 33 0:30 /docker /mnt/memory\\040bind rw,relatime - cgroup cgroup rw,memory
        """

    @Test func unifiedHostHasOnlyCgroup2() {
        let t = CgroupTopology.parse(mountinfo: Self.unifiedHost)
        #expect(t.layout == .unified)
        #expect(t.v1.isEmpty)
        #expect(t.v2?.mountPoint == "/sys/fs/cgroup")
        var withControllers = t
        withControllers.v2?.controllers = ["cpu", "memory", "pids"]
        #expect(withControllers.location(of: "memory") == .v2(mountPoint: "/sys/fs/cgroup"))
        #expect(withControllers.location(of: "cpuset") == nil)
    }

    @Test func hybridHostSplitsControllers() {
        var t = CgroupTopology.parse(mountinfo: Self.hybridHost)
        t.v2?.controllers = ["hugetlb"]
        #expect(t.layout == .hybrid)
        #expect(t.v2?.mountPoint == "/sys/fs/cgroup/unified")
        #expect(t.v1.map(\.mountPoint) == ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuset",
                                           "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/systemd"])
        #expect(t.location(of: "cpu") == .v1(mountPoint: "/sys/fs/cgroup/cpu,cpuacct", coMounted: ["cpuacct"]))
        #expect(t.location(of: "cpuset") == .v1(mountPoint: "/sys/fs/cgroup/cpuset", coMounted: []))
        #expect(t.location(of: "hugetlb") == .v2(mountPoint: "/sys/fs/cgroup/unified"))
        #expect(t.v1.last?.name == "systemd")
        #expect(t.v1.last?.controllers == [])
        #expect(t.v1Controllers == ["cpu", "cpuacct", "cpuset", "memory", "pids"])
        #expect(t.v2Controllers == ["hugetlb"])
    }

    @Test func legacyHostKeepsFirstMountOfEachHierarchy() {
        let t = CgroupTopology.parse(mountinfo: Self.legacyHost)
        #expect(t.layout == .legacy)
        #expect(t.v2 == nil)
        #expect(t.v1.count == 3)
        #expect(t.location(of: "memory") == .v1(mountPoint: "/sys/fs/cgroup/memory", coMounted: []))
        #expect(CgroupTopology.parse(mountinfo: "").layout == CgroupLayout.none)
    }

    @Test func unescapesMountPoints() {
        #expect(CgroupTopology.unescape("/mnt/memory\\040bind") == "/mnt/memory bind")
        #expect(CgroupTopology.unescape("/plain") == "/plain")
        #expect(CgroupTopology.unescape("/trail\\04") == "/trail\\04")
    }

    @Test func thisHostIsDetected() throws {
        let t = try CgroupTopology.detect()
        #expect(t.layout != CgroupLayout.none)
        // Whatever the layout, memory is somewhere on every machine we run on.
        #expect(t.location(of: "memory") != nil)
        #expect(t.availableControllers.contains("memory"))
    }

    @Test func missingControllerNamesTheFieldAndController() throws {
        var t = CgroupTopology.parse(mountinfo: Self.hybridHost)
        t.v1.removeAll { $0.controllers.contains("pids") }
        let manager = try CgroupManager(topology: t)
        #expect(throws: CgroupError.controllerUnavailable(controller: "pids", field: "pids_max", layout: .hybrid)) {
            try manager.plan(name: "vm", limits: CgroupLimits(pidsMax: 10))
        }
        #expect("\(CgroupError.controllerUnavailable(controller: "pids", field: "pids_max", layout: .hybrid))"
            == "pids_max: needs the cgroup controller 'pids', which this host (hybrid layout) does not offer")
    }

    @Test func planOnHybridHostUsesV1ForCpuMemoryPids() throws {
        var t = CgroupTopology.parse(mountinfo: Self.hybridHost)
        t.v2?.controllers = ["hugetlb"]
        let group = try CgroupManager(topology: t, parent: "qarax").plan(name: "vm-1")
        #expect(group.v2Directory == "/sys/fs/cgroup/unified/qarax/vm-1")
        #expect(group.v2Controllers.isEmpty)
        #expect(group.placement == CgroupPlacement(
            v2Directory: "/sys/fs/cgroup/unified/qarax/vm-1",
            v1ProcsFiles: ["/sys/fs/cgroup/cpu,cpuacct/qarax/vm-1/cgroup.procs",
                           "/sys/fs/cgroup/memory/qarax/vm-1/cgroup.procs",
                           "/sys/fs/cgroup/pids/qarax/vm-1/cgroup.procs"]))
        let withCpuset = try CgroupManager(topology: t).plan(name: "vm-1", limits: CgroupLimits(cpusetCpus: "0"))
        #expect(withCpuset.v1Directories.map(\.path).contains("/sys/fs/cgroup/cpuset/qarax/vm-1"))
    }

    @Test func groupSurvivesDurableState() throws {
        var t = CgroupTopology.parse(mountinfo: Self.hybridHost)
        t.v2?.controllers = ["hugetlb"]
        let group = try CgroupManager(topology: t).plan(name: "vm-7", limits: CgroupLimits(cpusetMems: "0"))
        let decoded = try JSONDecoder().decode(VMCgroup.self, from: JSONEncoder().encode(group))
        #expect(decoded == group)
        #expect(decoded.placement == group.placement)
    }

    @Test func planOnUnifiedHostUsesOnlyTheV2Directory() throws {
        var t = CgroupTopology.parse(mountinfo: Self.unifiedHost)
        t.v2?.controllers = ["cpuset", "cpu", "io", "memory", "pids"]
        let group = try CgroupManager(topology: t, parent: "qarax/vms").plan(name: "a")
        #expect(group.placement == CgroupPlacement(v2Directory: "/sys/fs/cgroup/qarax/vms/a"))
        #expect(group.v2Controllers == ["cpu", "memory", "pids"])
        #expect(group.directory(for: "memory")?.isV2 == true)
    }

    @Test(arguments: ["", "a/b", "..", ".", "cgroup.procs", "with space", String(repeating: "x", count: 256)])
    func badNamesAreRejected(name: String) throws {
        let manager = try CgroupManager(topology: CgroupTopology.parse(mountinfo: Self.hybridHost))
        #expect(throws: CgroupError.self) { try manager.plan(name: name) }
    }

    @Test(arguments: ["", "/qarax", "qarax/", "qarax/../x"])
    func badParentsAreRejected(parent: String) {
        #expect(throws: CgroupError.self) {
            try CgroupManager(topology: CgroupTopology.parse(mountinfo: Self.hybridHost), parent: parent)
        }
    }
}
