import LinuxSys
import Testing
@testable import NetPlumbing
#if canImport(Glibc)
import Glibc
#endif

@Suite(.enabled(if: isRoot, rootReason)) struct KernelErrorTests {
    @Test func duplicateNameKeepsTheKernelsEEXIST() async throws {
        try await withScratchNamespace { ns in
            _ = try await plumbing.createTap(TapRequest(name: "tap0", tag: try tag("vm1")), in: ns)
            // The veth's peer name is taken: the kernel refuses the RTM_NEWLINK itself.
            do {
                _ = try await plumbing.createVeth(VethRequest(name: "va0", peer: "tap0"), in: ns)
                Issue.record("a veth whose peer name is taken was created")
            } catch let NetPlumbingError.system(error) {
                #expect(error.errno == EEXIST)
                #expect(error.operation.contains("create veth 'va0' with peer 'tap0'"))
            }
        }
    }

    @Test func errnoThatLibnlWouldMistakeIsKept() async throws {
        try await withScratchNamespace { ns in
            try await withScratchDirectory { dir in
                _ = try await plumbing.createVeth(VethRequest(name: "vp0", peer: "vp1"), in: ns)
                let mac = "52:54:00:00:00:aa"
                _ = try await plumbing.createMacvtap(MacvtapRequest(name: "mvt0", tag: try tag("vm1"), parent: "vp0", mac: mac,
                                                                    deviceDirectory: dir), in: ns)
                do {
                    _ = try await plumbing.createMacvtap(MacvtapRequest(name: "mvt1", tag: try tag("vm2"), parent: "vp0", mac: mac,
                                                                        deviceDirectory: dir), in: ns)
                    Issue.record("two MACVTAPs with one MAC on one parent")
                } catch let NetPlumbingError.system(error) {
                    // The kernel says EADDRINUSE; libnl's code for it is NLE_EXIST, which reads as EEXIST.
                    #expect(error.errno == EADDRINUSE)
                    #expect(error.operation.contains("create MACVTAP 'mvt1' on 'vp0'"))
                }
            }
        }
    }

    @Test func deletingAMissingLinkIsENODEV() async throws {
        try await withScratchNamespace { ns in
            let expected = NetPlumbingError.linkNotFound(field: "name", name: "ghost0", namespace: ns.description)
            await #expect(throws: expected) { try await plumbing.delete("ghost0", in: ns) }
            #expect(expected.errno == ENODEV)
        }
    }

    @Test func enslavingToANonBridgeKeepsTheKernelsErrno() async throws {
        try await withScratchNamespace { ns in
            _ = try await plumbing.createVeth(VethRequest(name: "va0", peer: "vb0"), in: ns)
            _ = try await plumbing.createTap(TapRequest(name: "tap0", tag: try tag("vm1")), in: ns)
            do {
                _ = try await plumbing.configure("tap0", LinkChanges(master: .bridge("va0")), in: ns)
                Issue.record("a TAP was enslaved to a veth")
            } catch let NetPlumbingError.system(error) {
                // veth has no ndo_add_slave: the kernel answers EOPNOTSUPP, which libnl would turn into NLE_OPNOTSUPP.
                #expect(error.errno == EOPNOTSUPP)
                #expect(error.operation.contains("configure link 'tap0'"))
            }
        }
    }

    @Test func missingNamespaceIsNamed() async throws {
        let name = uniqueName("qxt-missing")
        await #expect(throws: NetPlumbingError.namespace(.notFound(.named(name)))) {
            _ = try await plumbing.createTap(TapRequest(name: "tap0", tag: try tag("vm1")), in: .named(name))
        }
        await #expect(throws: NetPlumbingError.namespace(.notFound(.path("/proc/self/ns/nothere")))) {
            _ = try await plumbing.links(in: .path("/proc/self/ns/nothere"))
        }
    }

    @Test func aFileThatIsNoNamespaceIsRefused() async throws {
        await #expect(throws: NetPlumbingError.namespace(.notANetworkNamespace(.path("/proc/self/ns/uts")))) {
            _ = try await plumbing.links(in: .path("/proc/self/ns/uts"))
        }
    }
}
