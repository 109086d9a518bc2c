import Testing
@testable import NetPlumbing

@Suite struct LinkMessageTests {
    @Test func parsesACapturedTap() throws {
        let link = try LinkMessage.parse(GoldenLinkMessages.tap0)
        #expect(link.name == "tap0")
        #expect(link.index == 4)
        #expect(link.kind == "tun")
        #expect(link.isTap)
        #expect(link.mtu == 9000)
        #expect(link.minMTU == 68)
        #expect(link.maxMTU == 65521)
        #expect(link.mac?.description == "52:54:00:12:34:56")
        #expect(link.txQueueLength == 1000)
        #expect(link.alias == "qarax:vm=vm1,nic=0")
        #expect(link.tag == (try LinkTag(vm: "vm1", nic: "0")))
        #expect(link.masterIndex == nil)
        #expect(!link.isUp)
        #expect(link.carrier == false)
        var tun = TunInfo()
        tun.owner = 1000
        tun.group = nil
        tun.type = 2
        tun.packetInfo = false
        tun.vnetHeader = true
        tun.persistent = true
        tun.multiQueue = false
        // IFLA_TUN_NUM_QUEUES / NUM_DISABLED_QUEUES only come with IFF_MULTI_QUEUE.
        #expect(link.tun == tun)
    }

    @Test func parsesACapturedMacvtap() throws {
        let link = try LinkMessage.parse(GoldenLinkMessages.mvt0)
        #expect(link.name == "mvt0")
        #expect(link.index == 5)
        #expect(link.kind == "macvtap")
        #expect(link.macvtapMode == .vepa)
        #expect(link.parentIndex == 3)  // vp0; the kernel registers the peer vp1 (#2) first
        #expect(link.mac?.description == "52:54:00:ab:cd:ef")
        #expect(link.mtu == 1500)
        #expect(link.tun == nil)
        #expect(link.tag == (try LinkTag(vm: "vm1", nic: "0")))
    }

    @Test func rejectsEveryTruncation() {
        let message = GoldenLinkMessages.tap0
        // Cutting the buffer anywhere before the end breaks nlmsg_len or an attribute.
        for cut in stride(from: 0, to: message.count, by: 7) {
            #expect(throws: LinkMessage.Malformed.self) { _ = try LinkMessage.parse(Array(message[0..<cut])) }
        }
    }

    @Test func rejectsAnAttributeRunningPastTheMessage() {
        var message = GoldenLinkMessages.mvt0
        // The first attribute (IFLA_IFNAME at offset 32) claims 0xFFF0 bytes.
        message[32] = 0xF0
        message[33] = 0xFF
        #expect(throws: LinkMessage.Malformed(reason: "attribute 3 at offset 32 has length 65520 past the end \(message.count)")) {
            _ = try LinkMessage.parse(message)
        }
    }

    @Test func rejectsOtherMessageTypes() {
        var message = GoldenLinkMessages.tap0
        message[4] = 17  // RTM_DELLINK
        #expect(throws: LinkMessage.Malformed(reason: "message type 17 is not RTM_NEWLINK")) {
            _ = try LinkMessage.parse(message)
        }
    }

    @Test func walksAttributesWithPaddingAndNestedFlag() throws {
        // Two attributes: type 1 with 1 payload byte (padded to 8), type 0x8002 (NLA_F_NESTED|2), 4 bytes.
        let bytes: [UInt8] = [5, 0, 1, 0, 0xAA, 0, 0, 0, 8, 0, 0x02, 0x80, 1, 2, 3, 4]
        var seen: [(UInt16, [UInt8])] = []
        try LinkMessage.forEachAttribute(bytes, from: 0, to: bytes.count) { type, start, end in
            seen.append((type, Array(bytes[start..<end])))
        }
        #expect(seen.map(\.0) == [1, 2])
        #expect(seen.map(\.1) == [[0xAA], [1, 2, 3, 4]])
    }
}
