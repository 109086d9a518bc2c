/// TUN/TAP offloads (`TUN_F_*`), as passed to `TUNSETOFFLOAD`.
public struct TapOffloads: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let checksum = TapOffloads(rawValue: 0x01)
    public static let tso4 = TapOffloads(rawValue: 0x02)
    public static let tso6 = TapOffloads(rawValue: 0x04)
    public static let tsoECN = TapOffloads(rawValue: 0x08)
    public static let ufo = TapOffloads(rawValue: 0x10)
    public static let uso4 = TapOffloads(rawValue: 0x20)
    public static let uso6 = TapOffloads(rawValue: 0x40)

    /// What a virtio-net device usually negotiates.
    public static let standard: TapOffloads = [.checksum, .tso4, .tso6, .tsoECN, .ufo]

    static let named: [(TapOffloads, String)] = [
        (.checksum, "csum"), (.tso4, "tso4"), (.tso6, "tso6"), (.tsoECN, "tso_ecn"),
        (.ufo, "ufo"), (.uso4, "uso4"), (.uso6, "uso6"),
    ]

    public var description: String {
        let names = Self.named.filter { contains($0.0) }.map(\.1)
        return names.isEmpty ? "none" : names.joined(separator: ",")
    }

    /// Why this set cannot be asked of the kernel, or nil. Segmentation offloads need checksum
    /// offload; TSO_ECN needs TSO4 or TSO6; USO4 and USO6 only come together.
    var problem: String? {
        let needChecksum: TapOffloads = [.tso4, .tso6, .tsoECN, .ufo, .uso4, .uso6]
        if !isDisjoint(with: needChecksum) && !contains(.checksum) {
            return "needs csum for \(intersection(needChecksum))"
        }
        if contains(.tsoECN) && isDisjoint(with: [.tso4, .tso6]) { return "tso_ecn needs tso4 or tso6" }
        if contains(.uso4) != contains(.uso6) { return "uso4 and uso6 only come together" }
        return nil
    }
}

/// MACVTAP/MACVLAN modes (`MACVLAN_MODE_*`).
public enum MacvtapMode: String, Hashable, Sendable, CaseIterable {
    case `private`, vepa, bridge, passthru

    var kernelValue: UInt32 {
        switch self {
        case .private: 1
        case .vepa: 2
        case .bridge: 4
        case .passthru: 8
        }
    }

    init?(kernelValue: UInt32) {
        guard let mode = Self.allCases.first(where: { $0.kernelValue == kernelValue }) else { return nil }
        self = mode
    }
}

/// Bounds every MTU must respect before the link's own maximum is known.
public enum MTULimits {
    /// ETH_MIN_MTU.
    public static let minimum = 68
    /// The largest MTU the kernel's u32 attribute and IP can use.
    public static let maximum = 65535
}

/// A persistent TAP for one VM NIC.
public struct TapRequest: Hashable, Sendable {
    public var name: String
    public var tag: LinkTag
    /// Queues the VMM will attach; more than one makes the TAP multi-queue.
    public var queues: Int
    /// Forces `IFF_MULTI_QUEUE` even with one queue.
    public var multiQueue: Bool
    /// uid allowed to attach (`TUNSETOWNER`); nil leaves it unset.
    public var owner: UInt32?
    /// gid allowed to attach (`TUNSETGROUP`); nil leaves it unset.
    public var group: UInt32?
    /// `TUNSETVNETHDRSZ`; nil keeps the kernel's 10.
    public var vnetHeaderSize: Int?
    public var offloads: TapOffloads
    public var mtu: Int?
    public var mac: String?
    public var txQueueLength: Int?
    /// Bridge to enslave the TAP to.
    public var master: String?
    public var up: Bool

    public init(name: String, tag: LinkTag, queues: Int = 1, multiQueue: Bool = false, owner: UInt32? = nil,
                group: UInt32? = nil, vnetHeaderSize: Int? = nil, offloads: TapOffloads = [], mtu: Int? = nil,
                mac: String? = nil, txQueueLength: Int? = nil, master: String? = nil, up: Bool = true) {
        self.name = name
        self.tag = tag
        self.queues = queues
        self.multiQueue = multiQueue
        self.owner = owner
        self.group = group
        self.vnetHeaderSize = vnetHeaderSize
        self.offloads = offloads
        self.mtu = mtu
        self.mac = mac
        self.txQueueLength = txQueueLength
        self.master = master
        self.up = up
    }

    /// Checks every field without touching the kernel.
    public func validate() throws(NetPlumbingError) {
        _ = try validated()
    }

    func validated() throws(NetPlumbingError) -> ValidatedTap {
        let name = try InterfaceName(name)
        if !(1...256).contains(queues) {
            throw .invalidArgument(field: "queues", value: "\(queues)", reason: "is outside 1…256")
        }
        for (field, id) in [("owner", owner), ("group", group)] where id == UInt32.max {
            throw .invalidArgument(field: field, value: "\(UInt32.max)", reason: "is the invalid id (-1)")
        }
        if let size = vnetHeaderSize, !(10...128).contains(size) {
            throw .invalidArgument(field: "vnetHeaderSize", value: "\(size)", reason: "is outside 10…128")
        }
        if let reason = offloads.problem {
            throw .invalidArgument(field: "offloads", value: offloads.description, reason: reason)
        }
        let common = try CommonLinkFields.validate(mtu: mtu, mac: mac, txQueueLength: txQueueLength, master: master)
        return ValidatedTap(request: self, name: name, common: common, multiQueue: multiQueue || queues > 1)
    }
}

/// A MACVTAP on a parent link, with its character device made in `deviceDirectory`.
public struct MacvtapRequest: Hashable, Sendable {
    public var name: String
    public var tag: LinkTag
    public var parent: String
    public var mode: MacvtapMode
    public var mac: String?
    public var mtu: Int?
    public var txQueueLength: Int?
    public var up: Bool
    /// Absolute directory where the private character device node is made (`<dir>/<name>`).
    public var deviceDirectory: String
    /// Owner and group of the node, so an unprivileged VMM can open it.
    public var deviceOwner: UInt32?
    public var deviceGroup: UInt32?

    public init(name: String, tag: LinkTag, parent: String, mode: MacvtapMode = .bridge, mac: String? = nil,
                mtu: Int? = nil, txQueueLength: Int? = nil, up: Bool = true, deviceDirectory: String,
                deviceOwner: UInt32? = nil, deviceGroup: UInt32? = nil) {
        self.name = name
        self.tag = tag
        self.parent = parent
        self.mode = mode
        self.mac = mac
        self.mtu = mtu
        self.txQueueLength = txQueueLength
        self.up = up
        self.deviceDirectory = deviceDirectory
        self.deviceOwner = deviceOwner
        self.deviceGroup = deviceGroup
    }

    /// Checks every field without touching the kernel.
    public func validate() throws(NetPlumbingError) {
        _ = try validated()
    }

    func validated() throws(NetPlumbingError) -> ValidatedMacvtap {
        let name = try InterfaceName(name)
        let parent: InterfaceName
        do { parent = try InterfaceName(self.parent) } catch {
            throw .invalidArgument(field: "parent", value: self.parent, reason: error.reasonText)
        }
        if parent == name { throw .invalidArgument(field: "parent", value: self.parent, reason: "is the link itself") }
        if !deviceDirectory.hasPrefix("/") {
            throw .invalidArgument(field: "deviceDirectory", value: deviceDirectory, reason: "is not an absolute path")
        }
        let common = try CommonLinkFields.validate(mtu: mtu, mac: mac, txQueueLength: txQueueLength, master: nil)
        return ValidatedMacvtap(request: self, name: name, parent: parent, common: common)
    }
}

/// A veth pair, for fixtures and operators.
public struct VethRequest: Hashable, Sendable {
    public var name: String
    public var peer: String
    public var tag: LinkTag?
    public var mtu: Int?
    public var up: Bool

    public init(name: String, peer: String, tag: LinkTag? = nil, mtu: Int? = nil, up: Bool = true) {
        self.name = name
        self.peer = peer
        self.tag = tag
        self.mtu = mtu
        self.up = up
    }

    /// Checks every field without touching the kernel.
    public func validate() throws(NetPlumbingError) {
        _ = try validated()
    }

    func validated() throws(NetPlumbingError) -> (InterfaceName, InterfaceName, CommonLinkFields) {
        let name = try InterfaceName(name)
        let peer: InterfaceName
        do { peer = try InterfaceName(self.peer) } catch {
            throw .invalidArgument(field: "peer", value: self.peer, reason: error.reasonText)
        }
        if peer == name { throw .invalidArgument(field: "peer", value: self.peer, reason: "is the same name as the link") }
        return (name, peer, try CommonLinkFields.validate(mtu: mtu, mac: nil, txQueueLength: nil, master: nil))
    }
}

/// A Linux bridge.
public struct BridgeRequest: Hashable, Sendable {
    public var name: String
    public var tag: LinkTag?
    public var mtu: Int?
    public var up: Bool

    public init(name: String, tag: LinkTag? = nil, mtu: Int? = nil, up: Bool = true) {
        self.name = name
        self.tag = tag
        self.mtu = mtu
        self.up = up
    }

    /// Checks every field without touching the kernel.
    public func validate() throws(NetPlumbingError) {
        _ = try validated()
    }

    func validated() throws(NetPlumbingError) -> (InterfaceName, CommonLinkFields) {
        (try InterfaceName(name), try CommonLinkFields.validate(mtu: mtu, mac: nil, txQueueLength: nil, master: nil))
    }
}

/// Changes to an existing link; nil fields stay as they are.
public struct LinkChanges: Hashable, Sendable {
    public enum Master: Hashable, Sendable {
        case detach
        case bridge(String)
    }

    public var mtu: Int?
    public var mac: String?
    public var up: Bool?
    public var master: Master?
    public var txQueueLength: Int?
    public var tag: LinkTag?

    public init(mtu: Int? = nil, mac: String? = nil, up: Bool? = nil, master: Master? = nil,
                txQueueLength: Int? = nil, tag: LinkTag? = nil) {
        self.mtu = mtu
        self.mac = mac
        self.up = up
        self.master = master
        self.txQueueLength = txQueueLength
        self.tag = tag
    }
}

/// MTU, MAC, txqueuelen and master, checked before anything touches the kernel.
struct CommonLinkFields: Hashable, Sendable {
    var mtu: Int?
    var mac: MacAddress?
    var txQueueLength: UInt32?
    var master: InterfaceName?

    static func validate(mtu: Int?, mac: String?, txQueueLength: Int?, master: String?) throws(NetPlumbingError) -> CommonLinkFields {
        if let mtu { try checkMTU(mtu, field: "mtu", maximum: MTULimits.maximum, limit: "the largest IP") }
        let parsedMAC: MacAddress? = if let mac { try MacAddress(mac) } else { nil }
        var queueLength: UInt32?
        if let txQueueLength {
            guard let value = UInt32(exactly: txQueueLength) else {
                throw .invalidArgument(field: "txQueueLength", value: "\(txQueueLength)", reason: "is outside 0…\(UInt32.max)")
            }
            queueLength = value
        }
        var masterName: InterfaceName?
        if let master {
            do { masterName = try InterfaceName(master) } catch {
                throw .invalidArgument(field: "master", value: master, reason: error.reasonText)
            }
        }
        return CommonLinkFields(mtu: mtu, mac: parsedMAC, txQueueLength: queueLength, master: masterName)
    }
}

/// Throws unless `minimum`(68)… `maximum`; the error names both.
func checkMTU(_ mtu: Int, field: String, maximum: Int, limit: String) throws(NetPlumbingError) {
    if mtu < MTULimits.minimum || mtu > maximum {
        throw .mtuOutOfRange(field: field, value: mtu, minimum: MTULimits.minimum, maximum: maximum, limit: limit)
    }
}

struct ValidatedTap: Sendable {
    let request: TapRequest
    let name: InterfaceName
    let common: CommonLinkFields
    let multiQueue: Bool
}

struct ValidatedMacvtap: Sendable {
    let request: MacvtapRequest
    let name: InterfaceName
    let parent: InterfaceName
    let common: CommonLinkFields
}

extension NetPlumbingError {
    /// The reason part of an `.invalidArgument`, for re-labelling it with another field.
    var reasonText: String {
        if case let .invalidArgument(_, _, reason) = self { return reason }
        return description
    }
}
