import LinuxSys
import Testing
@testable import NetPlumbing

@Suite(.enabled(if: isRoot, rootReason)) struct ReaperTests {
    @Test func removesTaggedLinksOfUnknownVMsOnly() async throws {
        try await withScratchNamespace { ns in
            try await withScratchDirectory { dir in
                _ = try await plumbing.createBridge(BridgeRequest(name: "br0"), in: ns)                        // untagged
                _ = try await plumbing.createVeth(VethRequest(name: "vp0", peer: "vp1"), in: ns)               // untagged
                _ = try await plumbing.createTap(TapRequest(name: "tap-a0", tag: try tag("vmA", "0")), in: ns)
                _ = try await plumbing.createTap(TapRequest(name: "tap-a1", tag: try tag("vmA", "1"), master: "br0"), in: ns)
                _ = try await plumbing.createTap(TapRequest(name: "tap-b0", tag: try tag("vmB", "0")), in: ns)
                _ = try await plumbing.createMacvtap(MacvtapRequest(name: "mvt-c0", tag: try tag("vmC", "0"), parent: "vp0",
                                                                    deviceDirectory: dir), in: ns)
                _ = try await plumbing.createVeth(VethRequest(name: "ve-a", peer: "ve-a-p", tag: try tag("vmA", "veth")), in: ns)

                let owned = try await plumbing.listOwnedLinks(in: ns)
                #expect(Set(owned.map(\.name)) == ["tap-a0", "tap-a1", "tap-b0", "mvt-c0", "ve-a", "ve-a-p"])
                #expect(owned.first { $0.name == "mvt-c0" }?.kind == "macvtap")

                let removed = try await plumbing.reap(in: ns, knownVMs: ["vmB", "vmC"])
                #expect(Set(removed.map(\.name)) == ["tap-a0", "tap-a1", "ve-a", "ve-a-p"])
                #expect(Set(removed.map(\.tag.vmID)) == ["vmA"])

                let left = Set(try await plumbing.links(in: ns).map(\.name))
                #expect(left == ["lo", "br0", "vp0", "vp1", "tap-b0", "mvt-c0"])
                #expect(try await plumbing.reap(in: ns, knownVMs: ["vmB", "vmC"]).isEmpty)
            }
        }
    }
}
