import LinuxSys
import Testing
@testable import NetPlumbing
#if canImport(Glibc)
import Glibc
#endif

/// A veth pair built with our own netlink code, to carry MACVTAPs.
func makeVethParent(in ns: NetworkNamespace, mtu: Int? = nil) async throws -> LinkInfo {
    let (parent, peer) = try await plumbing.createVeth(VethRequest(name: "vp0", peer: "vp1", mtu: mtu), in: ns)
    #expect(parent.kind == "veth")
    #expect(peer.kind == "veth")
    #expect(parent.parentIndex == peer.index)
    return parent
}

func charDevice(_ path: String) -> (major: UInt32, minor: UInt32)? {
    var st = stat()
    guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFCHR else { return nil }
    let dev = UInt64(st.st_rdev)
    let major = UInt32(((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF))
    let minor = UInt32((dev & 0xFF) | ((dev >> 12) & ~0xFF))
    return (major, minor)
}

@Suite(.enabled(if: isRoot, rootReason)) struct MacvtapTests {
    @Test(arguments: MacvtapMode.allCases)
    func macvtapOnVethWithItsOwnDeviceNode(mode: MacvtapMode) async throws {
        try await withScratchNamespace { ns in
            try await withScratchDirectory { dir in
                let parent = try await makeVethParent(in: ns)
                let request = MacvtapRequest(name: "mvt0", tag: try tag("vm1"), parent: "vp0", mode: mode,
                                             mac: "52:54:00:ab:cd:ef", deviceDirectory: dir, deviceOwner: 1000, deviceGroup: 1001)
                let result = try await plumbing.createMacvtap(request, in: ns)
                #expect(result.created)
                #expect(result.link.kind == "macvtap")
                #expect(result.link.macvtapMode == mode)
                #expect(result.link.parentIndex == parent.index)
                #expect(result.link.mac?.description == "52:54:00:ab:cd:ef")
                #expect(result.link.tag == (try tag("vm1")))
                #expect(result.devicePath == dir + "/mvt0")

                // The node matches this namespace's sysfs entry for the MACVTAP's own ifindex.
                let sysfsDev = try await sysfs("mvt0", "macvtap/tap\(result.ifindex)/dev", in: ns)
                #expect(sysfsDev == "\(result.deviceMajor):\(result.deviceMinor)")
                let node = try #require(charDevice(result.devicePath))
                #expect(node.major == result.deviceMajor)
                #expect(node.minor == result.deviceMinor)
                var st = stat()
                #expect(stat(result.devicePath, &st) == 0)
                #expect(st.st_uid == 1000)
                #expect(st.st_gid == 1001)
                #expect(st.st_mode & 0o777 == 0o600)

                let queues = try await plumbing.openMacvtapQueues(result, count: 2, in: ns)
                #expect(queues.count == 2)
                _ = consume queues

                try await plumbing.delete("mvt0", deviceDirectory: dir, in: ns)
                #expect(access(result.devicePath, F_OK) != 0)
            }
        }
    }

    @Test func sameIfindexInTwoNamespacesGetsEachItsOwnDevice() async throws {
        try await withScratchNamespace { a in
            try await withScratchNamespace { b in
                try await withScratchDirectory { dirA in
                    try await withScratchDirectory { dirB in
                        _ = try await makeVethParent(in: a)
                        _ = try await makeVethParent(in: b)
                        let ra = try await plumbing.createMacvtap(MacvtapRequest(name: "mvt0", tag: try tag("vm1"), parent: "vp0",
                                                                                  deviceDirectory: dirA), in: a)
                        let rb = try await plumbing.createMacvtap(MacvtapRequest(name: "mvt0", tag: try tag("vm2"), parent: "vp0",
                                                                                  deviceDirectory: dirB), in: b)
                        // Fresh namespaces number links alike, so /dev/tapN would be ambiguous.
                        #expect(ra.ifindex == rb.ifindex)
                        #expect(ra.deviceMinor != rb.deviceMinor || ra.deviceMajor != rb.deviceMajor)
                        #expect(try await sysfs("mvt0", "macvtap/tap\(ra.ifindex)/dev", in: a) == "\(ra.deviceMajor):\(ra.deviceMinor)")
                        #expect(try await sysfs("mvt0", "macvtap/tap\(rb.ifindex)/dev", in: b) == "\(rb.deviceMajor):\(rb.deviceMinor)")
                    }
                }
            }
        }
    }

    @Test func idempotentCreateKeepsTheNodeAndReportsDifferences() async throws {
        try await withScratchNamespace { ns in
            try await withScratchDirectory { dir in
                _ = try await makeVethParent(in: ns)
                let request = MacvtapRequest(name: "mvt0", tag: try tag("vm1"), parent: "vp0", mode: .bridge, deviceDirectory: dir)
                let first = try await plumbing.createMacvtap(request, in: ns)
                _ = unlink(first.devicePath)
                let again = try await plumbing.createMacvtap(request, in: ns)
                #expect(!again.created)
                #expect(again.ifindex == first.ifindex)
                #expect(charDevice(again.devicePath)?.minor == first.deviceMinor)

                var other = request
                other.mode = .vepa
                other.mtu = 1400
                await #expect(throws: NetPlumbingError.conflictingLink(name: "mvt0", differences: [
                    LinkDifference(field: "mode", existing: "bridge", requested: "vepa"),
                    LinkDifference(field: "mtu", existing: "1500", requested: "1400"),
                ])) {
                    _ = try await plumbing.createMacvtap(other, in: ns)
                }
            }
        }
    }

    @Test func mtuAboveTheParentsNamesBothLimits() async throws {
        try await withScratchNamespace { ns in
            try await withScratchDirectory { dir in
                _ = try await makeVethParent(in: ns, mtu: 1500)
                let request = MacvtapRequest(name: "mvt0", tag: try tag("vm1"), parent: "vp0", mtu: 9000, deviceDirectory: dir)
                let expected = NetPlumbingError.mtuOutOfRange(field: "mtu", value: 9000, minimum: 68, maximum: 1500,
                                                              limit: "the parent link 'vp0'")
                await #expect(throws: expected) { _ = try await plumbing.createMacvtap(request, in: ns) }
                #expect(expected.description == "mtu: 9000 is above the parent link 'vp0' maximum 1500 (allowed 68…1500)")

                _ = try await plumbing.createMacvtap(MacvtapRequest(name: "mvt1", tag: try tag("vm1"), parent: "vp0",
                                                                    deviceDirectory: dir), in: ns)
                await #expect(throws: NetPlumbingError.mtuOutOfRange(field: "mtu", value: 1501, minimum: 68, maximum: 1500,
                                                                     limit: "the parent link 'vp0'")) {
                    _ = try await plumbing.configure("mvt1", LinkChanges(mtu: 1501), in: ns)
                }
            }
        }
    }

    @Test func missingParentIsNamed() async throws {
        try await withScratchNamespace { ns in
            let request = MacvtapRequest(name: "mvt0", tag: try tag("vm1"), parent: "nope0", deviceDirectory: "/tmp")
            let expected = NetPlumbingError.linkNotFound(field: "parent", name: "nope0", namespace: ns.description)
            await #expect(throws: expected) { _ = try await plumbing.createMacvtap(request, in: ns) }
            #expect(expected.errno == ENODEV)
        }
    }
}
