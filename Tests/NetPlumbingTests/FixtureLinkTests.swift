import LinuxSys
import Testing
@testable import NetPlumbing

@Suite(.enabled(if: isRoot, rootReason)) struct FixtureLinkTests {
    @Test func bridgeCreateIsIdempotent() async throws {
        try await withScratchNamespace { ns in
            let request = BridgeRequest(name: "br0", tag: try tag("vm1", "br"), mtu: 1400)
            let first = try await plumbing.createBridge(request, in: ns)
            #expect(first.kind == "bridge")
            #expect(first.mtu == 1400)
            #expect(first.isUp)
            #expect(first.tag == (try tag("vm1", "br")))
            #expect(try await sysfs("br0", "bridge/stp_state", in: ns) == "0")
            let again = try await plumbing.createBridge(request, in: ns)
            #expect(again.index == first.index)
            var other = request
            other.mtu = 1500
            await #expect(throws: NetPlumbingError.conflictingLink(name: "br0", differences: [
                LinkDifference(field: "mtu", existing: "1400", requested: "1500"),
            ])) {
                _ = try await plumbing.createBridge(other, in: ns)
            }
        }
    }

    @Test func vethPairIsUpTaggedAndIdempotent() async throws {
        try await withScratchNamespace { ns in
            let request = VethRequest(name: "va0", peer: "vb0", tag: try tag("vm1", "v"), mtu: 2000)
            let (a, b) = try await plumbing.createVeth(request, in: ns)
            #expect(a.isUp && b.isUp)
            #expect(a.mtu == 2000 && b.mtu == 2000)
            #expect(a.parentIndex == b.index && b.parentIndex == a.index)
            #expect(a.tag == (try tag("vm1", "v")) && b.tag == a.tag)
            #expect(try await sysfs("vb0", "iflink", in: ns) == "\(a.index)")
            let (a2, b2) = try await plumbing.createVeth(request, in: ns)
            #expect(a2.index == a.index && b2.index == b.index)
            await #expect(throws: NetPlumbingError.conflictingLink(name: "va0", differences: [
                LinkDifference(field: "peer", existing: "#\(b.index)", requested: "'other0'"),
            ])) {
                _ = try await plumbing.createVeth(VethRequest(name: "va0", peer: "other0", tag: try tag("vm1", "v"), mtu: 2000), in: ns)
            }
            try await plumbing.delete("va0", in: ns)
            // Deleting one end removes the pair.
            await #expect(throws: NetPlumbingError.linkNotFound(field: "name", name: "vb0", namespace: ns.description)) {
                _ = try await plumbing.link("vb0", in: ns)
            }
        }
    }
}

/// Validation happens before any namespace or kernel work, so these need no privileges.
@Suite struct FixtureLinkValidationTests {
    @Test func invalidVethNamesAreNamedByField() async {
        await #expect(throws: NetPlumbingError.invalidArgument(field: "peer", value: "x/y",
                                                               reason: "contains '/'; allowed are letters, digits, '-', '_' and '.'")) {
            _ = try await plumbing.createVeth(VethRequest(name: "va0", peer: "x/y"))
        }
        await #expect(throws: NetPlumbingError.invalidArgument(field: "peer", value: "va0", reason: "is the same name as the link")) {
            _ = try await plumbing.createVeth(VethRequest(name: "va0", peer: "va0"))
        }
    }
}
