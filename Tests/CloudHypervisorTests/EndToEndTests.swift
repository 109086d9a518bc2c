import CShims
import CloudHypervisorAPI
import Foundation
import NodeCore
import Testing
import VMModel
#if canImport(Glibc)
import Glibc
#endif

@Suite("VMSpec to a running simulated VM")
struct EndToEndTests {
    @Test func aTranslatedPlanCreatesAttachesAndBoots() async throws {
        try await withSimulator { sim, client in
            let kernel = try SimulatorProcess.kernel(in: sim.directory)
            let spec = try VMSpec.decode(json: Data("""
            {
              "name": "e2e",
              "cpus": {"boot_vcpus": 2, "max_vcpus": 2},
              "memory": {"size": "256M"},
              "payload": {"kernel": "\(kernel)", "cmdline": "console=ttyS0"},
              "nics": [{"id": "net0", "kind": "tap", "bridge": "br0", "mac": "52:54:00:12:34:56", "num_queues": 4}],
              "serial": {"mode": "file", "path": "\(sim.serialPath)"},
              "console": {"mode": "off"}
            }
            """.utf8))
            let prepared = [PreparedNIC(id: "net0", interfaceName: "qxe2e0", queuePairs: 2,
                                        mac: try #require(MACAddress("52:54:00:12:34:56")))]
            let plan = try VmConfigTranslation.plan(for: spec, preparedNICs: prepared)

            try await client.create(plan.vmConfig)
            for attachment in plan.netAttachments {
                // Stand-ins for the TAP queue fds: the simulator counts and checks them.
                let fds = (0..<attachment.fileDescriptorCount).map { _ in qx_memfd_create("tap-queue", 0) }
                defer { for fd in fds { close(fd) } }
                #expect(fds.allSatisfy { $0 >= 0 })
                #expect(try await client.addNet(attachment.body, descriptors: fds) == nil)
            }
            try await client.boot()
            let info = try await client.info()
            #expect(info.state == .running)
            let echoed = try CloudHypervisorJSON.decode(VmInfo.self, from: Data(info.body))
            #expect(echoed.config.net?.map(\.id) == ["net0"])
            try await client.shutdownVMM()
            #expect(exitedNormally(await sim.waitForExit()) == 0)
            #expect(sim.text(sim.serialPath).contains("QARAX-GUEST-READY"))
        }
    }
}
