import LinuxSys
import Testing
@testable import NetPlumbing
#if canImport(Glibc)
import Glibc
#endif

@Suite(.enabled(if: isRoot, rootReason)) struct TapTests {
    @Test func fullyConfiguredTapSeenFromTheKernel() async throws {
        try await withScratchNamespace { ns in
            let bridge = try await plumbing.createBridge(BridgeRequest(name: "br0", tag: tag("vm1", "br")), in: ns)
            let request = TapRequest(name: "tap0", tag: try tag("vm1"), owner: 1000, group: 1001, vnetHeaderSize: 12,
                                     offloads: [.checksum, .tso4, .tso6, .tsoECN, .ufo, .uso4, .uso6], mtu: 9000,
                                     mac: "52:54:00:12:34:56", txQueueLength: 750, master: "br0")
            let result = try await plumbing.createTap(request, in: ns)
            #expect(result.created)
            #expect(result.acceptedOffloads?.isSuperset(of: [.checksum, .tso4, .tso6, .tsoECN]) == true)
            #expect(result.refusedOffloads.union(result.acceptedOffloads ?? []) == request.offloads)

            // Our netlink read-back.
            let link = try await plumbing.link("tap0", in: ns)
            #expect(link == result.link)
            #expect(link.isTap)
            #expect(link.mtu == 9000)
            #expect(link.mac?.description == "52:54:00:12:34:56")
            #expect(link.txQueueLength == 750)
            #expect(link.masterIndex == bridge.index)
            #expect(link.isUp)
            #expect(link.tag == (try tag("vm1")))
            #expect(link.tun?.owner == 1000)
            #expect(link.tun?.group == 1001)
            #expect(link.tun?.vnetHeader == true)
            #expect(link.tun?.packetInfo == false)
            #expect(link.tun?.persistent == true)
            #expect(link.tun?.multiQueue == false)
            #expect(link.minMTU == 68)

            // sysfs of that namespace.
            #expect(try await sysfs("tap0", "mtu", in: ns) == "9000")
            #expect(try await sysfs("tap0", "owner", in: ns) == "1000")
            #expect(try await sysfs("tap0", "group", in: ns) == "1001")
            let tunFlags = try await sysfs("tap0", "tun_flags", in: ns)
            #expect(tunFlags == "0x5802")  // IFF_TAP|IFF_PERSIST|IFF_NO_PI|IFF_VNET_HDR
            #expect(try await sysfs("tap0", "address", in: ns) == "52:54:00:12:34:56")
            #expect(try await sysfs("tap0", "tx_queue_len", in: ns) == "750")
            #expect(try await sysfs("tap0", "ifalias", in: ns) == "qarax:vm=vm1,nic=0")
            let flags = try await sysfs("tap0", "flags", in: ns)
            #expect(flags == "0x1303")  // UP|BROADCAST|PROMISC|ALLMULTI (as a bridge port)|MULTICAST
            #expect(try await sysfs("tap0", "brport/bridge/ifindex", in: ns) == "\(bridge.index)")

            // TUNSETVNETHDRSZ, as an attached queue sees it.
            let queue = try await plumbing.openTapQueues("tap0", count: 1, in: ns)
            #expect(queue.vnetHeaderSize() == 12)
            _ = consume queue

            // ethtool features reflect TUNSETOFFLOAD.
            let features = try await plumbing.features(of: "tap0", in: ns)
            let seen = features.tapOffloads
            #expect(seen.isSuperset(of: [.checksum, .tso4, .tso6, .tsoECN]))
            #expect(seen.subtracting(.ufo) == (result.acceptedOffloads ?? []).subtracting(.ufo))
        }
    }

    @Test func tapWithoutOffloadsHasNone() async throws {
        try await withScratchNamespace { ns in
            let result = try await plumbing.createTap(TapRequest(name: "tap1", tag: try tag("vm1"), up: false), in: ns)
            #expect(result.acceptedOffloads == [])
            #expect(!result.link.isUp)
            #expect(result.link.tun?.owner == nil)
            let features = try await plumbing.features(of: "tap1", in: ns)
            #expect(features.tapOffloads.isDisjoint(with: [.tso4, .tso6, .tsoECN]))
            #expect(try await sysfs("tap1", "owner", in: ns) == "-1")
            let queue = try await plumbing.openTapQueues("tap1", count: 1, in: ns)
            #expect(queue.vnetHeaderSize() == 10)  // the kernel's default, sizeof(struct virtio_net_hdr)
        }
    }

    @Test func multiQueueTapHandsOutOneFdPerQueue() async throws {
        try await withScratchNamespace { ns in
            let result = try await plumbing.createTap(TapRequest(name: "mq0", tag: try tag("vm1"), queues: 4), in: ns)
            #expect(result.link.tun?.multiQueue == true)
            #expect(result.link.tun?.queues == 0)
            var queues = try await plumbing.openTapQueues("mq0", count: 4, in: ns)
            #expect(queues.count == 4)
            #expect(Set(queues.rawValues).count == 4)
            #expect(try await plumbing.link("mq0", in: ns).tun?.queues == 4)
            let tunFlags = try await sysfs("mq0", "tun_flags", in: ns)
            #expect(tunFlags == "0x5902")  // IFF_TAP|IFF_MULTI_QUEUE|IFF_PERSIST|IFF_NO_PI|IFF_VNET_HDR
            let expectedFirst = queues.rawValues[0]
            guard let first = queues.next() else {
                Issue.record("no first queue")
                return
            }
            #expect(first.rawValue == expectedFirst)
            #expect(queues.count == 3)
            _ = consume queues
            _ = consume first
            // A closed fd detaches its queue once no other thread (a concurrent fork in another
            // test, a /proc scan) still holds the file.
            #expect(try await eventually { try await plumbing.link("mq0", in: ns).tun?.queues == 0 })
        }
    }

    @Test func singleQueueTapRefusesSeveralQueues() async throws {
        try await withScratchNamespace { ns in
            _ = try await plumbing.createTap(TapRequest(name: "sq0", tag: try tag("vm1")), in: ns)
            await #expect(throws: NetPlumbingError.invalidArgument(field: "count", value: "2",
                                                                   reason: "needs a multi-queue TAP; 'sq0' has one queue")) {
                _ = try await plumbing.openTapQueues("sq0", count: 2, in: ns)
            }
            let one = try await plumbing.openTapQueues("sq0", count: 1, in: ns)
            #expect(one.count == 1)
        }
    }

    @Test func aSingleQueueTapInUseIsBusy() async throws {
        try await withScratchNamespace { ns in
            _ = try await plumbing.createTap(TapRequest(name: "sq1", tag: try tag("vm1")), in: ns)
            let held = try await plumbing.openTapQueues("sq1", count: 1, in: ns)
            do {
                _ = try await plumbing.openTapQueues("sq1", count: 1, in: ns)
                Issue.record("a single-queue TAP was attached twice")
            } catch let NetPlumbingError.system(error) {
                #expect(error.errno == EBUSY)
                #expect(error.operation.contains("attach queue 0 of TAP 'sq1'"))
            }
            _ = consume held
        }
    }

    @Test func createIsIdempotentAndNamesEveryDifference() async throws {
        try await withScratchNamespace { ns in
            let request = TapRequest(name: "tap0", tag: try tag("vm1"), owner: 1000, mtu: 9000)
            let first = try await plumbing.createTap(request, in: ns)
            let again = try await plumbing.createTap(request, in: ns)
            #expect(first.created)
            #expect(!again.created)
            #expect(again.link.index == first.link.index)

            var other = request
            other.mtu = 1500
            other.owner = 2000
            other.tag = try tag("vm2")
            let expected = NetPlumbingError.conflictingLink(name: "tap0", differences: [
                LinkDifference(field: "owner", existing: "1000", requested: "2000"),
                LinkDifference(field: "mtu", existing: "9000", requested: "1500"),
                LinkDifference(field: "tag", existing: "'qarax:vm=vm1,nic=0'", requested: "'qarax:vm=vm2,nic=0'"),
            ])
            await #expect(throws: expected) { _ = try await plumbing.createTap(other, in: ns) }
            #expect(expected.errno == EEXIST)
            #expect(expected.description.contains("mtu: existing 9000, requested 1500"))
        }
    }

    @Test func nameTakenByAnotherKindIsAConflict() async throws {
        try await withScratchNamespace { ns in
            _ = try await plumbing.createBridge(BridgeRequest(name: "taken0"), in: ns)
            await #expect(throws: NetPlumbingError.conflictingLink(name: "taken0", differences: [
                LinkDifference(field: "kind", existing: "bridge", requested: "tap"),
            ])) {
                _ = try await plumbing.createTap(TapRequest(name: "taken0", tag: try tag("vm1")), in: ns)
            }
        }
    }

    @Test func mtuAboveTheTapsMaximumNamesBothLimitsAndLeavesNothing() async throws {
        try await withScratchNamespace { ns in
            let probe = try await plumbing.createTap(TapRequest(name: "probe0", tag: try tag("vm1")), in: ns)
            let maximum = try #require(probe.link.maxMTU)
            try #require(maximum < MTULimits.maximum)
            let request = TapRequest(name: "big0", tag: try tag("vm1"), mtu: maximum + 1)
            await #expect(throws: NetPlumbingError.mtuOutOfRange(field: "mtu", value: maximum + 1, minimum: 68,
                                                                 maximum: maximum, limit: "the TAP's")) {
                _ = try await plumbing.createTap(request, in: ns)
            }
            await #expect(throws: NetPlumbingError.linkNotFound(field: "name", name: "big0", namespace: ns.description)) {
                _ = try await plumbing.link("big0", in: ns)
            }
        }
    }

    @Test func missingBridgeMasterIsNamed() async throws {
        try await withScratchNamespace { ns in
            await #expect(throws: NetPlumbingError.linkNotFound(field: "master", name: "nobr0", namespace: ns.description)) {
                _ = try await plumbing.createTap(TapRequest(name: "tap0", tag: try tag("vm1"), master: "nobr0"), in: ns)
            }
        }
    }

    @Test func configureChangesAndChecksTheLinksLimits() async throws {
        try await withScratchNamespace { ns in
            _ = try await plumbing.createBridge(BridgeRequest(name: "br0"), in: ns)
            let tap = try await plumbing.createTap(TapRequest(name: "tap0", tag: try tag("vm1"), up: false), in: ns)
            let changed = try await plumbing.configure("tap0", LinkChanges(mtu: 4000, mac: "02:00:00:00:00:01", up: true,
                                                                           master: .bridge("br0"), txQueueLength: 64), in: ns)
            #expect(changed.mtu == 4000)
            #expect(changed.mac?.description == "02:00:00:00:00:01")
            #expect(changed.isUp)
            #expect(changed.masterIndex != nil)
            #expect(changed.txQueueLength == 64)
            let detached = try await plumbing.configure("tap0", LinkChanges(up: false, master: .detach), in: ns)
            #expect(detached.masterIndex == nil)
            #expect(!detached.isUp)
            let maximum = try #require(tap.link.maxMTU)
            await #expect(throws: NetPlumbingError.mtuOutOfRange(field: "mtu", value: maximum + 1, minimum: 68,
                                                                 maximum: maximum, limit: "the link's")) {
                _ = try await plumbing.configure("tap0", LinkChanges(mtu: maximum + 1), in: ns)
            }
        }
    }
}
