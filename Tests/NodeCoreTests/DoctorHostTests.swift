import Foundation
import Glibc
import Testing
@testable import NodeCore

/// The real doctor on this machine, plus fake VMMs written to a scratch directory.
@Suite struct DoctorHostTests {
    static let isRoot = getuid() == 0

    @Test(.enabled(if: access("/dev/kvm", F_OK) == 0 && isRoot, "needs /dev/kvm and root"))
    func realHostReport() throws {
        let report = HostDoctor.run()
        #expect(report[.kvm]?.passed == true, "\(report[.kvm]?.summary ?? "")")
        #expect(report[.kvm]?.details["api_version"] == .int(12))
        #expect(report[.tun]?.passed == (access("/dev/net/tun", F_OK) == 0))
        if access("/dev/vhost-net", F_OK) != 0 {
            #expect(report[.vhostNet]?.passed == false)
            #expect(report[.vhostNet]?.fix != nil)
        }
        if access("/dev/vhost-vsock", F_OK) != 0 { #expect(report[.vhostVsock]?.passed == false) }
        #expect(report[.seccomp]?.passed == true)
        #expect(report[.cgroups]?.passed == true, "\(report[.cgroups]?.summary ?? "")")
        for result in report.results where !result.passed { #expect(result.fix != nil, "\(result.check) has no fix") }

        let data = Data(try DoctorRenderer.json(report).utf8)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for check in DoctorCheck.allCases {
            #expect(object[check.key] is Bool, "missing key \(check.key)")
        }
        let requiredPass = DoctorCheck.allCases.filter(\.isRequired).allSatisfy { object[$0.key] as? Bool == true }
        #expect(object["ready"] as? Bool == requiredPass)
        let details = try #require(object["details"] as? [String: Any])
        let cgroups = try #require(details["cgroups"] as? [String: Any])
        #expect(cgroups["layout"] is String)
        let hugepages = try #require(details["hugepages"] as? [String: Any])
        #expect(hugepages["sizes"] is [Any])
    }

    @Test func flaggedBinaryThatDoesNotExistFailsWithAHint() {
        let result = VMMProbe.check(.cloudHypervisor, explicitPath: "/nonexistent/cloud-hypervisor",
                                    searchPath: "", timeout: .seconds(5))
        #expect(!result.passed)
        #expect(result.summary == "--cloud-hypervisor-binary /nonexistent/cloud-hypervisor does not exist")
        #expect(result.fix?.contains("--cloud-hypervisor-binary") == true)
        let report = HostDoctor.run(.init(cloudHypervisorBinary: "/nonexistent/cloud-hypervisor"))
        #expect(report[.cloudHypervisor]?.passed == false)
        #expect(report[.vmm]?.passed == false)
        #expect(!report.ready)
    }

    @Test func fakeVMMScriptIsDetectedWithItsVersion() throws {
        let dir = try DoctorScratchDir()
        defer { dir.remove() }
        try dir.write("cloud-hypervisor", "#!/bin/sh\necho 'cloud-hypervisor v99.1'\n", mode: 0o755)
        let byFlag = VMMProbe.check(.cloudHypervisor, explicitPath: dir.path + "/cloud-hypervisor",
                                    searchPath: "", timeout: .seconds(10))
        #expect(byFlag.passed, "\(byFlag.summary)")
        #expect(byFlag.details["version"] == .string("99.1"))
        let byPath = VMMProbe.check(.cloudHypervisor, explicitPath: nil, searchPath: "/nonexistent:" + dir.path,
                                    timeout: .seconds(10))
        #expect(byPath.details["path"] == .string(dir.path + "/cloud-hypervisor"))
        #expect(byPath.details["version"] == .string("99.1"))
        let aggregate = VMMProbe.aggregate([byPath], explicit: [])
        #expect(aggregate.passed)
        #expect(aggregate.summary == "usable: cloud_hypervisor")
    }

    @Test func brokenOrSilentVMMsFail() throws {
        let dir = try DoctorScratchDir()
        defer { dir.remove() }
        try dir.write("qemu-fails", "#!/bin/sh\necho 'QEMU emulator version 7.2.0'\nexit 3\n", mode: 0o755)
        try dir.write("qemu-noexec", "#!/bin/sh\n", mode: 0o644)
        let fails = VMMProbe.check(.qemu, explicitPath: dir.path + "/qemu-fails", searchPath: "", timeout: .seconds(10))
        #expect(!fails.passed)
        #expect(fails.summary.contains("exited(3)"))
        let noexec = VMMProbe.check(.qemu, explicitPath: dir.path + "/qemu-noexec", searchPath: "", timeout: .seconds(10))
        #expect(!noexec.passed)
        #expect(noexec.summary.hasSuffix("is not an executable file"))
        #expect(VMMProbe.find("qemu-noexec", searchPath: dir.path) == nil)
    }

    @Test func hangingVMMIsKilledAtTheDeadline() throws {
        let dir = try DoctorScratchDir()
        defer { dir.remove() }
        try dir.write("hang", "#!/bin/sh\nexec /bin/sleep 600\n", mode: 0o755)
        let output = try BoundedCommand.run(dir.path + "/hang", arguments: [], timeout: .milliseconds(200))
        #expect(output.termination == .timedOut)
    }

    @Test func commandOutputAndEnvironmentAreCaptured() throws {
        let output = try BoundedCommand.run("/usr/bin/env", arguments: [], timeout: .seconds(10))
        #expect(output.termination == .exited(0))
        #expect(output.text.split(separator: "\n").sorted() == BoundedCommand.environment.sorted().map { Substring($0) })
    }
}
