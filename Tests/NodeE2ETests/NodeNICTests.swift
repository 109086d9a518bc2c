import Foundation
import Glibc
import LinuxSys
import NetPlumbing
import NodeCore
import Testing

/// NICs of VMs the real daemon runs under QEMU, in a fresh network namespace: the VMM holds the
/// devices, and they are gone after delete.
@Suite("node daemon NICs end to end")
struct NodeNICTests {
    static let backends: [ServeProcess.Backend] = E2E.canRunQEMU ? [.qemu, .cloudHypervisor] : [.cloudHypervisor]

    @Test("a TAP NIC (MTU 9000, offloads) and a MACVTAP NIC on a veth parent: the VMM holds them; gone after delete",
          .enabled(if: E2E.hasKVM, "needs /dev/kvm"), .enabled(if: E2E.isRoot, "needs root"), arguments: backends)
    func tapAndMacvtap(backend: ServeProcess.Backend) async throws {
        let netnsName = E2E.unique("qxe2e")
        let namespace = try await NetworkNamespace.create(named: netnsName)
        defer { try? NetworkNamespace.delete(named: netnsName) }
        let plumbing = NetPlumbing()
        _ = try await plumbing.createVeth(VethRequest(name: "vpar0", peer: "vpar1"), in: namespace)

        let serve = try ServeProcess(backend: backend, networkNamespace: netnsName)
        defer { serve.cleanUp() }
        try await serve.start()
        let tapVM = E2E.unique("tap")
        let macvtapVM = E2E.unique("mvt")
        for (name, net) in [(tapVM, "tap,mtu=9000"), (macvtapVM, "macvtap,parent=vpar0,mode=bridge")] {
            let run = await serve.cli("vm", "run", "--name", name, "--kernel", serve.kernel, "--cmdline", "console=ttyS0",
                                      "--memory", "64M", "--net", net, "--wait-for-console", E2E.marker, "--timeout", "20s")
            try #require(run.status == 0, "\(run)\n\(serve.log)")
        }

        let links = try await plumbing.links(in: namespace)
        let tap = try #require(links.first { $0.tag?.vmID == tapVM }, "\(links)")
        let macvtap = try #require(links.first { $0.tag?.vmID == macvtapVM }, "\(links)")

        // The TAP: MTU 9000, offloads the node set, owned by the VMM's uid, a reader attached (carrier).
        #expect(tap.isTap)
        #expect(tap.mtu == 9000)
        #expect(tap.tun?.owner == 65534)
        #expect(tap.hasLowerUp, "QEMU holds the TAP open: carrier up")
        if backend == .cloudHypervisor {
            // QEMU rewrites a TAP's offloads to what the guest negotiated (the tiny guest drives no
            // virtio device: none); the simulator leaves the node's settings in place.
            let offloads = try await plumbing.features(of: tap.name, in: namespace).tapOffloads
            #expect(offloads.contains(.checksum) && offloads.contains(.tso4), "\(offloads)")
        }
        let tapPid = try #require(try await serve.info(tapVM).pid)
        #expect(Host.descriptorTargets(of: tapPid).contains("/dev/net/tun"), "\(Host.descriptorTargets(of: tapPid))")

        // The MACVTAP: on the veth parent, its private /dev/tapN node open in QEMU.
        #expect(macvtap.kind == "macvtap")
        #expect(macvtap.parentIndex == links.first { $0.name == "vpar0" }?.index)
        let macvtapPid = try #require(try await serve.info(macvtapVM).pid)
        #expect(Host.descriptorTargets(of: macvtapPid).contains { $0.hasSuffix("/" + macvtap.name) },
                "\(Host.descriptorTargets(of: macvtapPid))")

        for name in [tapVM, macvtapVM] { #expect(await serve.cli("vm", "delete", name).status == 0) }
        let after = try await plumbing.links(in: namespace).map(\.name)
        #expect(!after.contains(tap.name) && !after.contains(macvtap.name), "\(after)")
        #expect(Host.cgroups(under: serve.cgroupParent).isEmpty)
        #expect(Host.files(under: serve.runtimeRoot).isEmpty, "\(Host.files(under: serve.runtimeRoot))")
        #expect(try await serve.stop() == 0)
    }
}
