import Foundation
import Testing
@testable import NodeCore

@Suite struct DoctorRenderingTests {
    static let report = DoctorReport(results: [
        CheckResult(.kvm, passed: true, summary: "/dev/kvm: API version 12, KVM_CREATE_VM works",
                    details: ["api_version": .int(12)]),
        CheckResult(.vhostNet, passed: false, summary: "/dev/vhost-net is missing", fix: "modprobe vhost_net"),
        CheckResult(.qemu, passed: true, summary: "/usr/bin/qemu-system-x86_64 version 7.2.19",
                    details: ["version": .string("7.2.19")]),
        CheckResult(.vmm, passed: false, summary: "no VMM found", fix: "apt-get install qemu-system-x86"),
    ])

    @Test func textIsAlignedWithMarksAndFixes() {
        let expected = """
            qarax-node doctor: host readiness

            ✓ kvm        /dev/kvm: API version 12, KVM_CREATE_VM works
            ! vhost_net  /dev/vhost-net is missing
                         fix: modprobe vhost_net
            ✓ qemu       /usr/bin/qemu-system-x86_64 version 7.2.19
            ✗ vmm        no VMM found
                         fix: apt-get install qemu-system-x86

            not ready: vmm failed; see the fix lines above

            """
        #expect(DoctorRenderer.text(Self.report) == expected)
    }

    @Test func readyTextListsOptionalMisses() {
        var report = Self.report
        report.results.removeLast()
        #expect(report.ready)
        #expect(DoctorRenderer.text(report).hasSuffix("\nready: this host can run VMs (optional missing: vhost_net)\n"))
    }

    @Test func jsonIsOneSortedObject() throws {
        let expected = """
            {
              "checks" : [
                {
                  "name" : "kvm",
                  "passed" : true,
                  "required" : true,
                  "summary" : "/dev/kvm: API version 12, KVM_CREATE_VM works"
                },
                {
                  "fix" : "modprobe vhost_net",
                  "name" : "vhost_net",
                  "passed" : false,
                  "required" : false,
                  "summary" : "/dev/vhost-net is missing"
                },
                {
                  "name" : "qemu",
                  "passed" : true,
                  "required" : false,
                  "summary" : "/usr/bin/qemu-system-x86_64 version 7.2.19"
                },
                {
                  "fix" : "apt-get install qemu-system-x86",
                  "name" : "vmm",
                  "passed" : false,
                  "required" : true,
                  "summary" : "no VMM found"
                }
              ],
              "details" : {
                "kvm" : {
                  "api_version" : 12
                },
                "qemu" : {
                  "version" : "7.2.19"
                },
                "vhost_net" : {

                },
                "vmm" : {

                }
              },
              "kvm" : true,
              "qemu" : true,
              "ready" : false,
              "vhost_net" : false,
              "vmm" : false
            }

            """
        #expect(try DoctorRenderer.json(Self.report) == expected)
    }

    @Test func requiredAndOptionalAreSplit() {
        #expect(Self.report.failedRequired == [.vmm])
        #expect(Self.report.failedOptional == [.vhostNet])
        #expect(!Self.report.ready)
        #expect(DoctorReport(results: []).ready)
    }
}
