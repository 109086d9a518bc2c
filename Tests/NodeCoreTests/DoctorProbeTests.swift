import Foundation
import Glibc
import Testing
@testable import LinuxSys
@testable import NodeCore

/// Pure parsing and the checks fed with fixed inputs.
@Suite struct DoctorProbeTests {
    @Test(arguments: [
        (VMMKind.cloudHypervisor, "cloud-hypervisor v52.0\n", "52.0"),
        (.cloudHypervisor, "cloud-hypervisor v41.0.0-dirty", "41.0.0-dirty"),
        (.qemu, "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright (c) 2003-2022", "7.2.19"),
        (.qemu, "QEMU emulator version 9.1.0\n", "9.1.0"),
    ])
    func parsesVersions(kind: VMMKind, output: String, version: String) {
        #expect(kind.parseVersion(output) == version)
    }

    @Test(arguments: [
        (VMMKind.cloudHypervisor, "cloud-hypervisor: error: unknown flag"),
        (.cloudHypervisor, "QEMU emulator version 7.2.19"),
        (.qemu, "cloud-hypervisor v52.0"),
        (.qemu, "QEMU emulator version unknown"),
        (.qemu, ""),
    ])
    func rejectsOutputWithoutAVersion(kind: VMMKind, output: String) {
        #expect(kind.parseVersion(output) == nil)
    }

    @Test func kernelVersions() throws {
        let recent = try #require(HostChecks.parseKernelVersion("6.18.44-fc-v669"))
        #expect(recent.major == 6 && recent.minor == 18)
        let lts = try #require(HostChecks.parseKernelVersion("5.10.0-28-amd64"))
        #expect(lts.major == 5 && lts.minor == 10)
        #expect(HostChecks.parseKernelVersion("garbage") == nil)
        #expect(HostChecks.kernel(release: "4.19.0").passed == false)
        #expect(HostChecks.kernel(release: "4.19.0").fix != nil)
        #expect(HostChecks.kernel(release: "6.1.0-13-amd64").passed)
    }

    @Test func capabilityMasksDecode() {
        #expect(HostChecks.decodeCapabilities(hex: "0000000000003000") == ["CAP_NET_ADMIN", "CAP_NET_RAW"])
        #expect(HostChecks.decodeCapabilities(hex: "000001ffffffffff")?.count == 41)
        #expect(HostChecks.decodeCapabilities(hex: "zz") == nil)
    }

    @Test func capabilitiesCheckNamesWhatIsMissing() {
        let full = HostChecks.capabilities(status: "Name:\tx\nCapEff:\t000001ffffffffff\n")
        #expect(full.passed)
        let noSysResource = HostChecks.capabilities(status: "CapEff:\t000001fffeffffff\n")
        #expect(noSysResource.passed)
        #expect(noSysResource.summary.contains("CAP_SYS_RESOURCE"))
        let netOnly = HostChecks.capabilities(status: "CapEff:\t0000000000001000\n")
        #expect(!netOnly.passed)
        #expect(netOnly.summary.contains("CAP_SYS_ADMIN"))
        #expect(!netOnly.summary.contains("CAP_NET_ADMIN"))
        #expect(netOnly.fix?.contains("setcap") == true)
        #expect(!HostChecks.capabilities(status: "").passed)
    }

    @Test func seccompStatusField() {
        #expect(HostChecks.parseStatusField("Seccomp", in: "Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n") == "2")
        let none = HostChecks.seccomp(status: "Name:\tx\n", prctlMode: -EINVAL)
        #expect(!none.passed)
        #expect(none.fix?.contains("CONFIG_SECCOMP") == true)
        let byPrctl = HostChecks.seccomp(status: "", prctlMode: 0)
        #expect(byPrctl.details["mode"] == .string("0"))
    }

    @Test func cgroupsCheckOnHybridAndBrokenHosts() {
        var hybrid = CgroupTopology(v1: [
            CgroupHierarchy(version: .v1, mountPoint: "/", controllers: ["cpu", "cpuacct"]),
            CgroupHierarchy(version: .v1, mountPoint: "/", controllers: ["memory"]),
            CgroupHierarchy(version: .v1, mountPoint: "/", controllers: ["pids"]),
        ], v2: CgroupHierarchy(version: .v2, mountPoint: "/", controllers: ["hugetlb"]))
        let ok = HostChecks.cgroups(topology: hybrid)
        #expect(ok.passed == (getuid() == 0))
        #expect(ok.summary.hasPrefix("hybrid: v1 cpu,cpuacct,memory,pids; v2 at /: hugetlb"))
        hybrid.v1.removeLast()
        let noPids = HostChecks.cgroups(topology: hybrid)
        #expect(!noPids.passed)
        #expect(noPids.summary.hasSuffix("missing pids"))
        #expect(noPids.fix?.contains("pids") == true)
        #expect(!HostChecks.cgroups(topology: nil).passed)
    }

    @Test func hugepagesFromASysfsTree() throws {
        let root = try DoctorScratchDir()
        defer { root.remove() }
        for (size, total, free) in [(2048, "16", "10"), (1_048_576, "0", "0")] {
            try root.write("mm/hugepages-\(size)kB/nr_hugepages", total + "\n")
            try root.write("mm/hugepages-\(size)kB/free_hugepages", free + "\n")
            try root.write("node/node0/hugepages/hugepages-\(size)kB/nr_hugepages", total + "\n")
            try root.write("node/node0/hugepages/hugepages-\(size)kB/free_hugepages", free + "\n")
        }
        try root.write("node/online", "0\n")
        let result = HostChecks.hugepages(root: root.path + "/mm", nodeRoot: root.path + "/node")
        #expect(result.passed)
        #expect(result.summary == "2 MiB 10/16 free, 1 GiB 0/0 free; NUMA nodes: 0")
        #expect(result.details["numa_nodes"] == .array([.int(0)]))
        let none = HostChecks.hugepages(root: root.path + "/absent", nodeRoot: root.path + "/node")
        #expect(!none.passed)
        #expect(none.fix?.contains("CONFIG_HUGETLBFS") == true)
    }

    @Test func missingDeviceIsReportedWithItsFix() {
        let result = HostChecks.device(.vhostNet, path: "/dev/qarax-no-such-device", fix: "modprobe x", purpose: "speed")
        #expect(!result.passed)
        #expect(result.summary == "/dev/qarax-no-such-device is missing (optional: speed)")
        #expect(result.fix == "modprobe x")
    }
}

/// A scratch directory under /tmp, removed by `remove()`.
struct DoctorScratchDir {
    let path: String

    init() throws {
        path = "/tmp/qarax-doctor-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    /// Writes through a close-on-exec descriptor, so a process spawned meanwhile by a parallel test
    /// cannot keep the file open for writing (which would make exec of a script fail with ETXTBSY).
    func write(_ relative: String, _ content: String, mode: mode_t = 0o644) throws {
        let file = path + "/" + relative
        let url = URL(fileURLWithPath: file)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("open \(file)", errno: errno) }
        defer { close(fd) }
        let bytes = Array(content.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw SystemError("write \(file)", errno: errno)
        }
        guard fchmod(fd, mode) == 0 else { throw SystemError("fchmod \(file)", errno: errno) }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
