import Testing
@testable import NetPlumbing

@Suite struct ValidationTests {
    static let vm1 = try? LinkTag(vm: "vm1", nic: "0")

    func tap(_ edit: (inout TapRequest) -> Void) throws -> TapRequest {
        var request = TapRequest(name: "tap0", tag: try #require(Self.vm1))
        edit(&request)
        return request
    }

    @Test func aPlainRequestIsValid() throws {
        try tap { _ in }.validate()
        try tap { $0.offloads = .standard; $0.queues = 8; $0.mtu = 9000; $0.mac = "52:54:00:00:00:01" }.validate()
        try tap { $0.offloads = [.checksum, .uso4, .uso6] }.validate()
    }

    @Test(arguments: [
        ("name", "tap/0", "contains '/'; allowed are letters, digits, '-', '_' and '.'"),
        ("name", "a-very-long-tap-name", "is 20 bytes long; interface names have at most 15"),
        ("queues", "0", "is outside 1…256"),
        ("queues", "257", "is outside 1…256"),
        ("owner", "4294967295", "is the invalid id (-1)"),
        ("vnetHeaderSize", "8", "is outside 10…128"),
        ("offloads", "tso4", "needs csum for tso4"),
        ("offloads", "csum,tso_ecn", "tso_ecn needs tso4 or tso6"),
        ("offloads", "csum,uso4", "uso4 and uso6 only come together"),
        ("mac", "00:00:00:00:00:00", "is all zero"),
        ("mac", "01:00:5e:00:00:01", "is a multicast address; a link needs a unicast one"),
        ("mac", "52:54:00:00:01", "is not six ':'-separated hex bytes"),
        ("mac", "52:54:00:00:01:zz", "has 'zz', which is not a two-digit hex byte"),
        ("txQueueLength", "-1", "is outside 0…4294967295"),
        ("master", "br 0", "contains byte 0x20; allowed are letters, digits, '-', '_' and '.'"),
    ])
    func tapFieldErrors(field: String, value: String, reason: String) throws {
        let request = try tap { r in
            switch field {
            case "name": r.name = value
            case "queues": r.queues = Int(value) ?? 0
            case "owner": r.owner = UInt32(value)
            case "vnetHeaderSize": r.vnetHeaderSize = Int(value)
            case "offloads": r.offloads = value == "tso4" ? [.tso4] : value == "csum,tso_ecn" ? [.checksum, .tsoECN] : [.checksum, .uso4]
            case "mac": r.mac = value
            case "txQueueLength": r.txQueueLength = Int(value)
            case "master": r.master = value
            default: break
            }
        }
        #expect(throws: NetPlumbingError.invalidArgument(field: field, value: value, reason: reason)) {
            try request.validate()
        }
    }

    @Test(arguments: [(67, 65535), (65536, 65535), (0, 65535)])
    func mtuOutsideTheAbsoluteLimitsNamesBoth(mtu: Int, maximum: Int) throws {
        let request = try tap { $0.mtu = mtu }
        let expected = NetPlumbingError.mtuOutOfRange(field: "mtu", value: mtu, minimum: 68, maximum: maximum, limit: "the largest IP")
        #expect(throws: expected) { try request.validate() }
        #expect(expected.description.contains("68"))
        #expect(expected.description.contains("65535"))
    }

    @Test func macvtapFieldErrors() throws {
        let vm = try #require(Self.vm1)
        #expect(throws: NetPlumbingError.invalidArgument(field: "parent", value: "", reason: "is empty")) {
            try MacvtapRequest(name: "mvt0", tag: vm, parent: "", deviceDirectory: "/run/qarax").validate()
        }
        #expect(throws: NetPlumbingError.invalidArgument(field: "parent", value: "mvt0", reason: "is the link itself")) {
            try MacvtapRequest(name: "mvt0", tag: vm, parent: "mvt0", deviceDirectory: "/run/qarax").validate()
        }
        #expect(throws: NetPlumbingError.invalidArgument(field: "deviceDirectory", value: "run/qarax", reason: "is not an absolute path")) {
            try MacvtapRequest(name: "mvt0", tag: vm, parent: "eth0", deviceDirectory: "run/qarax").validate()
        }
        try MacvtapRequest(name: "mvt0", tag: vm, parent: "eth0", mode: .passthru, deviceDirectory: "/run/qarax").validate()
    }

    @Test func errorsReadAsFieldValueReason() {
        #expect(NetPlumbingError.invalidArgument(field: "queues", value: "0", reason: "is outside 1…256").description
            == "queues: '0' is outside 1…256")
        #expect(NetPlumbingError.mtuOutOfRange(field: "mtu", value: 67, minimum: 68, maximum: 1500, limit: "x").description
            == "mtu: 67 is below the minimum 68 (allowed 68…1500)")
        #expect(NetPlumbingError.conflictingLink(name: "tap0", differences: [
            LinkDifference(field: "mtu", existing: "1500", requested: "9000"),
            LinkDifference(field: "owner", existing: "unset", requested: "1000"),
        ]).description == "link 'tap0' exists with other attributes (EEXIST): mtu: existing 1500, requested 9000; owner: existing unset, requested 1000")
    }
}

@Suite struct LinkTagTests {
    @Test func roundTripsThroughTheAlias() throws {
        let tag = try LinkTag(vm: "0b6f2c1e-9d7a-4e3b-a1f0-5c2d8e7f9a10", nic: "net_0")
        #expect(tag.alias == "qarax:vm=0b6f2c1e-9d7a-4e3b-a1f0-5c2d8e7f9a10,nic=net_0")
        #expect(LinkTag(alias: tag.alias) == tag)
    }

    @Test(arguments: ["", "eth0 uplink", "qarax:", "qarax:vm=a", "qarax:vm=a,nic=", "qarax:vm=a b,nic=0",
                      "qarax:nic=0,vm=a", "qarax:vm=a,nic=0,x=1", "QARAX:vm=a,nic=0"])
    func foreignAliasesAreNoTags(alias: String) {
        #expect(LinkTag(alias: alias) == nil)
    }

    @Test func idsAreChecked() {
        #expect(throws: NetPlumbingError.invalidArgument(field: "tag.vm", value: "a,b", reason: "contains ','; allowed are letters, digits, '-', '_' and '.'")) {
            _ = try LinkTag(vm: "a,b", nic: "0")
        }
        #expect(throws: NetPlumbingError.invalidArgument(field: "tag.nic", value: "", reason: "is empty")) {
            _ = try LinkTag(vm: "a", nic: "")
        }
        let long = String(repeating: "v", count: 65)
        #expect(throws: NetPlumbingError.invalidArgument(field: "tag.vm", value: long, reason: "is 65 bytes long; at most 64 are allowed")) {
            _ = try LinkTag(vm: long, nic: "0")
        }
    }

    @Test func macAddressesPrintLowercase() throws {
        #expect(try MacAddress("52:54:00:AB:cd:0F").description == "52:54:00:ab:cd:0f")
    }
}
