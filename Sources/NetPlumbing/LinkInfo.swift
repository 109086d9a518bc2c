/// A link as the kernel reports it (one RTM_NEWLINK message).
public struct LinkInfo: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var index: Int32
    /// `IFLA_INFO_KIND`: `tun`, `macvtap`, `veth`, `bridge`…; nil for links without one (lo).
    public var kind: String?
    public var mtu: Int
    public var minMTU: Int?
    public var maxMTU: Int?
    /// `ifi_flags`.
    public var flags: UInt32
    public var mac: MacAddress?
    /// ifindex of the bridge (or other master) this link is enslaved to.
    public var masterIndex: Int32?
    public var txQueueLength: Int?
    public var alias: String?
    /// `IFLA_LINK`: the parent (macvtap) or peer (veth).
    public var parentIndex: Int32?
    /// `IFLA_OPERSTATE`.
    public var operationalState: UInt8?
    /// `IFLA_CARRIER`.
    public var carrier: Bool?
    public var macvtapMode: MacvtapMode?
    public var tun: TunInfo?

    public init(name: String, index: Int32) {
        self.name = name
        self.index = index
        mtu = 0
        flags = 0
    }

    /// `IFF_UP`: administratively up.
    public var isUp: Bool { flags & 0x1 != 0 }
    /// `IFF_RUNNING`: operationally up.
    public var isRunning: Bool { flags & 0x40 != 0 }
    /// `IFF_LOWER_UP`: the driver signals carrier.
    public var hasLowerUp: Bool { flags & 0x10000 != 0 }

    /// The qarax tag in the ifalias, if any.
    public var tag: LinkTag? { alias.flatMap(LinkTag.init(alias:)) }

    /// Whether this is a TAP (a tun device in TAP mode).
    public var isTap: Bool { kind == "tun" && tun?.isTap == true }

    public var description: String {
        var parts = ["\(name) #\(index)", "kind \(kind ?? "none")", "mtu \(mtu)", isUp ? "up" : "down"]
        if let mac { parts.append("mac \(mac)") }
        if let masterIndex { parts.append("master #\(masterIndex)") }
        if let alias { parts.append("alias \(alias)") }
        return parts.joined(separator: ", ")
    }
}

/// tun/tap attributes (`IFLA_INFO_DATA` of kind `tun`, `IFLA_TUN_*`).
public struct TunInfo: Hashable, Sendable {
    /// nil when unset (the kernel reports -1).
    public var owner: UInt32?
    public var group: UInt32?
    /// `IFF_TUN` (1) or `IFF_TAP` (2).
    public var type: UInt8?
    public var packetInfo: Bool?
    public var vnetHeader: Bool?
    public var persistent: Bool?
    public var multiQueue: Bool?
    public var queues: UInt32?
    public var disabledQueues: UInt32?

    public init() {}

    public var isTap: Bool { type == 2 }
}

/// Netlink attribute parsing for RTM_NEWLINK messages (libnl parses neither `IFLA_MIN_MTU` /
/// `IFLA_MAX_MTU` nor tun's `IFLA_INFO_DATA`).
enum LinkMessage {
    struct Malformed: Error, Equatable {
        let reason: String
    }

    static let headerLength = 16
    static let ifinfoLength = 16
    static let typeNewLink: UInt16 = 16

    enum Attr {
        static let address: UInt16 = 1
        static let ifname: UInt16 = 3
        static let mtu: UInt16 = 4
        static let link: UInt16 = 5
        static let master: UInt16 = 10
        static let txqlen: UInt16 = 13
        static let operstate: UInt16 = 16
        static let linkinfo: UInt16 = 18
        static let ifalias: UInt16 = 20
        static let carrier: UInt16 = 33
        static let minMTU: UInt16 = 50
        static let maxMTU: UInt16 = 51
    }

    /// Parses one whole netlink message (header included).
    static func parse(_ bytes: [UInt8]) throws(Malformed) -> LinkInfo {
        guard bytes.count >= headerLength + ifinfoLength else { throw Malformed(reason: "\(bytes.count) bytes is shorter than a link message") }
        let length = Int(u32(bytes, 0))
        guard length <= bytes.count, length >= headerLength + ifinfoLength else {
            throw Malformed(reason: "nlmsg_len \(length) does not fit \(bytes.count) bytes")
        }
        guard u16(bytes, 4) == typeNewLink else { throw Malformed(reason: "message type \(u16(bytes, 4)) is not RTM_NEWLINK") }
        let index = Int32(bitPattern: u32(bytes, headerLength + 4))
        let flags = u32(bytes, headerLength + 8)
        var info = LinkInfo(name: "", index: index)
        info.flags = flags
        var sawName = false
        try forEachAttribute(bytes, from: headerLength + ifinfoLength, to: length) { (type, start, end) throws(Malformed) in
            let size = end - start
            switch type {
            case Attr.ifname:
                info.name = string(bytes, start, end)
                sawName = true
            case Attr.address where size == 6: info.mac = MacAddress(bytes: Array(bytes[start..<end]))
            case Attr.mtu where size >= 4: info.mtu = Int(u32(bytes, start))
            case Attr.minMTU where size >= 4: info.minMTU = Int(u32(bytes, start))
            case Attr.maxMTU where size >= 4: info.maxMTU = Int(u32(bytes, start))
            case Attr.link where size >= 4: info.parentIndex = Int32(bitPattern: u32(bytes, start))
            case Attr.master where size >= 4: info.masterIndex = Int32(bitPattern: u32(bytes, start))
            case Attr.txqlen where size >= 4: info.txQueueLength = Int(u32(bytes, start))
            case Attr.operstate where size >= 1: info.operationalState = bytes[start]
            case Attr.carrier where size >= 1: info.carrier = bytes[start] != 0
            case Attr.ifalias: info.alias = string(bytes, start, end)
            case Attr.linkinfo: try parseLinkInfo(bytes, start, end, into: &info)
            default: break
            }
        }
        guard sawName else { throw Malformed(reason: "no IFLA_IFNAME") }
        if info.alias == "" { info.alias = nil }
        return info
    }

    private static func parseLinkInfo(_ bytes: [UInt8], _ from: Int, _ to: Int, into info: inout LinkInfo) throws(Malformed) {
        var dataRange: Range<Int>?
        try forEachAttribute(bytes, from: from, to: to) { (type, start, end) throws(Malformed) in
            if type == 1 { info.kind = string(bytes, start, end) }
            if type == 2 { dataRange = start..<end }
        }
        guard let data = dataRange else { return }
        switch info.kind {
        case "tun":
            var tun = TunInfo()
            try forEachAttribute(bytes, from: data.lowerBound, to: data.upperBound) { (type, start, end) throws(Malformed) in
                let size = end - start
                switch type {
                case 1 where size >= 4: let v = u32(bytes, start); tun.owner = v == UInt32.max ? nil : v
                case 2 where size >= 4: let v = u32(bytes, start); tun.group = v == UInt32.max ? nil : v
                case 3 where size >= 1: tun.type = bytes[start]
                case 4 where size >= 1: tun.packetInfo = bytes[start] != 0
                case 5 where size >= 1: tun.vnetHeader = bytes[start] != 0
                case 6 where size >= 1: tun.persistent = bytes[start] != 0
                case 7 where size >= 1: tun.multiQueue = bytes[start] != 0
                case 8 where size >= 4: tun.queues = u32(bytes, start)
                case 9 where size >= 4: tun.disabledQueues = u32(bytes, start)
                default: break
                }
            }
            info.tun = tun
        case "macvtap", "macvlan":
            try forEachAttribute(bytes, from: data.lowerBound, to: data.upperBound) { (type, start, end) throws(Malformed) in
                if type == 1 && end - start >= 4 { info.macvtapMode = MacvtapMode(kernelValue: u32(bytes, start)) }
            }
        default:
            break
        }
    }

    /// Walks `struct nlattr` records (u16 length including the 4-byte header, u16 type with
    /// NLA_F_NESTED / NLA_F_NET_BYTEORDER masked off, payload padded to 4 bytes).
    static func forEachAttribute(_ bytes: [UInt8], from: Int, to: Int,
                                 _ body: (UInt16, Int, Int) throws(Malformed) -> Void) throws(Malformed) {
        var offset = from
        while offset + 4 <= to {
            let length = Int(u16(bytes, offset))
            let type = u16(bytes, offset + 2) & 0x3FFF
            guard length >= 4, offset + length <= to else {
                throw Malformed(reason: "attribute \(type) at offset \(offset) has length \(length) past the end \(to)")
            }
            try body(type, offset + 4, offset + length)
            offset += (length + 3) & ~3
        }
    }

    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }

    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    /// A NUL-terminated attribute string.
    static func string(_ b: [UInt8], _ start: Int, _ end: Int) -> String {
        let slice = b[start..<end]
        let stop = slice.firstIndex(of: 0) ?? end
        return String(decoding: b[start..<stop], as: UTF8.self)
    }
}
