/// A virtio-block disk: an image file on the node, or a vhost-user backend socket.
public struct DiskSpec: Codable, Hashable, Sendable {
    public static let defaultNumQueues = 1
    public static let defaultQueueSize = 128

    public var id: String
    /// The image on the node (absolute; under the node's disk roots). Not with `vhost_user`.
    public var path: String?
    public var readonly: Bool
    /// Open the image with O_DIRECT.
    public var direct: Bool
    public var vhostUser: Bool
    /// The vhost-user backend socket; required with `vhost_user`, not allowed without.
    public var vhostSocket: String?
    public var numQueues: Int
    public var queueSize: Int
    public var rateLimiter: RateLimiterSpec?
    /// The id of an entry of `rate_limit_groups` (shared limit); not together with `rate_limiter`.
    public var rateLimitGroup: String?
    public var pciSegment: Int
    /// The serial number the guest sees (at most 20 bytes).
    public var serial: String?

    public init(id: String, path: String? = nil, readonly: Bool = false, direct: Bool = false,
                vhostUser: Bool = false, vhostSocket: String? = nil,
                numQueues: Int = DiskSpec.defaultNumQueues, queueSize: Int = DiskSpec.defaultQueueSize,
                rateLimiter: RateLimiterSpec? = nil, rateLimitGroup: String? = nil,
                pciSegment: Int = 0, serial: String? = nil) {
        self.id = id
        self.path = path
        self.readonly = readonly
        self.direct = direct
        self.vhostUser = vhostUser
        self.vhostSocket = vhostSocket
        self.numQueues = numQueues
        self.queueSize = queueSize
        self.rateLimiter = rateLimiter
        self.rateLimitGroup = rateLimitGroup
        self.pciSegment = pciSegment
        self.serial = serial
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, path, readonly, direct, vhostUser = "vhost_user", vhostSocket = "vhost_socket"
        case numQueues = "num_queues", queueSize = "queue_size", rateLimiter = "rate_limiter"
        case rateLimitGroup = "rate_limit_group", pciSegment = "pci_segment", serial
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        path = try c.decodeIfPresent(String.self, forKey: .path)
        readonly = try c.decodeIfPresent(Bool.self, forKey: .readonly) ?? false
        direct = try c.decodeIfPresent(Bool.self, forKey: .direct) ?? false
        vhostUser = try c.decodeIfPresent(Bool.self, forKey: .vhostUser) ?? false
        vhostSocket = try c.decodeIfPresent(String.self, forKey: .vhostSocket)
        numQueues = try c.decodeIfPresent(Int.self, forKey: .numQueues) ?? Self.defaultNumQueues
        queueSize = try c.decodeIfPresent(Int.self, forKey: .queueSize) ?? Self.defaultQueueSize
        rateLimiter = try c.decodeIfPresent(RateLimiterSpec.self, forKey: .rateLimiter)
        rateLimitGroup = try c.decodeIfPresent(String.self, forKey: .rateLimitGroup)
        pciSegment = try c.decodeIfPresent(Int.self, forKey: .pciSegment) ?? 0
        serial = try c.decodeIfPresent(String.self, forKey: .serial)
    }
}

/// How a NIC reaches the host.
public enum NICKind: String, SpecEnum {
    /// A TAP device the node creates, optionally enslaved to `bridge`.
    case tap
    /// A MACVTAP device on the host link `parent`, in `mode`.
    case macvtap
    /// A vhost-user backend (e.g. a userspace switch) at `vhost_socket`.
    case vhostUser = "vhost-user"
}

/// The MACVTAP mode (Linux `macvlan` modes).
public enum MacvtapMode: String, SpecEnum {
    case bridge, vepa, `private`, passthru
}

/// A virtio-net NIC. Kind-specific fields are only allowed on their kind.
public struct NICSpec: Codable, Hashable, Sendable {
    public static let defaultNumQueues = 2
    public static let defaultQueueSize = 256

    public var id: String
    public var kind: NICKind
    /// `tap` only: the bridge the TAP joins.
    public var bridge: String?
    /// `macvtap` only (required): the host link the MACVTAP sits on.
    public var parent: String?
    /// `macvtap` only: `bridge` when omitted.
    public var mode: MacvtapMode?
    /// The guest's MAC; the node picks a locally administered one when omitted.
    public var mac: String?
    /// The host side's MAC (`tap`, `macvtap`).
    public var hostMAC: String?
    public var mtu: Int?
    /// Virtqueues: two per queue pair (RX + TX), so an even number.
    public var numQueues: Int
    public var queueSize: Int
    public var offloadTSO: Bool
    public var offloadUFO: Bool
    public var offloadCsum: Bool
    /// `tap`/`macvtap` only.
    public var rateLimiter: RateLimiterSpec?
    /// `vhost-user` only (required).
    public var vhostSocket: String?
    /// `vhost-user` only: `client` when omitted.
    public var vhostMode: VhostMode?
    public var pciSegment: Int
    /// Put the device behind the virtual IOMMU (not with vhost-user).
    public var iommu: Bool

    public init(id: String, kind: NICKind, bridge: String? = nil, parent: String? = nil, mode: MacvtapMode? = nil,
                mac: String? = nil, hostMAC: String? = nil, mtu: Int? = nil,
                numQueues: Int = NICSpec.defaultNumQueues, queueSize: Int = NICSpec.defaultQueueSize,
                offloadTSO: Bool = true, offloadUFO: Bool = true, offloadCsum: Bool = true,
                rateLimiter: RateLimiterSpec? = nil, vhostSocket: String? = nil, vhostMode: VhostMode? = nil,
                pciSegment: Int = 0, iommu: Bool = false) {
        self.id = id
        self.kind = kind
        self.bridge = bridge
        self.parent = parent
        self.mode = mode
        self.mac = mac
        self.hostMAC = hostMAC
        self.mtu = mtu
        self.numQueues = numQueues
        self.queueSize = queueSize
        self.offloadTSO = offloadTSO
        self.offloadUFO = offloadUFO
        self.offloadCsum = offloadCsum
        self.rateLimiter = rateLimiter
        self.vhostSocket = vhostSocket
        self.vhostMode = vhostMode
        self.pciSegment = pciSegment
        self.iommu = iommu
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, kind, bridge, parent, mode, mac, hostMAC = "host_mac", mtu
        case numQueues = "num_queues", queueSize = "queue_size"
        case offloadTSO = "offload_tso", offloadUFO = "offload_ufo", offloadCsum = "offload_csum"
        case rateLimiter = "rate_limiter", vhostSocket = "vhost_socket", vhostMode = "vhost_mode"
        case pciSegment = "pci_segment", iommu
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        kind = try c.decode(NICKind.self, forKey: .kind)
        bridge = try c.decodeIfPresent(String.self, forKey: .bridge)
        parent = try c.decodeIfPresent(String.self, forKey: .parent)
        mode = try c.decodeIfPresent(MacvtapMode.self, forKey: .mode)
        mac = try c.decodeIfPresent(String.self, forKey: .mac)
        hostMAC = try c.decodeIfPresent(String.self, forKey: .hostMAC)
        mtu = try c.decodeIfPresent(Int.self, forKey: .mtu)
        numQueues = try c.decodeIfPresent(Int.self, forKey: .numQueues) ?? Self.defaultNumQueues
        queueSize = try c.decodeIfPresent(Int.self, forKey: .queueSize) ?? Self.defaultQueueSize
        offloadTSO = try c.decodeIfPresent(Bool.self, forKey: .offloadTSO) ?? true
        offloadUFO = try c.decodeIfPresent(Bool.self, forKey: .offloadUFO) ?? true
        offloadCsum = try c.decodeIfPresent(Bool.self, forKey: .offloadCsum) ?? true
        rateLimiter = try c.decodeIfPresent(RateLimiterSpec.self, forKey: .rateLimiter)
        vhostSocket = try c.decodeIfPresent(String.self, forKey: .vhostSocket)
        vhostMode = try c.decodeIfPresent(VhostMode.self, forKey: .vhostMode)
        pciSegment = try c.decodeIfPresent(Int.self, forKey: .pciSegment) ?? 0
        iommu = try c.decodeIfPresent(Bool.self, forKey: .iommu) ?? false
    }

    /// Which side of a vhost-user socket listens.
    public enum VhostMode: String, SpecEnum {
        /// The backend listens; the VMM connects (the socket must exist before boot).
        case client
        /// The VMM listens; the backend connects.
        case server
    }

    /// The MACVTAP mode in effect (`bridge` when omitted); `nil` for other kinds.
    public var effectiveMode: MacvtapMode? { kind == .macvtap ? (mode ?? .bridge) : nil }
}

/// A serial port or virtio console.
public struct ConsoleSpec: Codable, Hashable, Sendable {
    public static let defaultSerial = ConsoleSpec(mode: .null)
    public static let defaultConsole = ConsoleSpec(mode: .off)

    /// Where a serial port or console goes.
    public enum Mode: String, SpecEnum {
        /// No device.
        case off
        /// A pseudo-terminal the VMM allocates.
        case pty
        /// The VMM's standard output.
        case tty
        /// A file (`path`), written by the VMM.
        case file
        /// A Unix socket (`path`) the VMM listens on — serial port only.
        case socket
        /// The device exists, its output is discarded.
        case null
    }

    public var mode: Mode
    /// The file (`file` mode) or socket (`socket` mode); absolute; not allowed with other modes.
    public var path: String?

    public init(mode: Mode, path: String? = nil) {
        self.mode = mode
        self.path = path
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case mode, path
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        mode = try c.decode(Mode.self, forKey: .mode)
        path = try c.decodeIfPresent(String.self, forKey: .path)
    }
}

/// The virtio-rng device's entropy source on the host.
public struct RNGSpec: Codable, Hashable, Sendable {
    /// The sources a VM may read from.
    public static let allowedSources: Set<String> = ["/dev/urandom", "/dev/random", "/dev/hwrng"]

    public var source: String

    public init(source: String = "/dev/urandom") {
        self.source = source
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case source
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        source = try c.decodeIfPresent(String.self, forKey: .source) ?? "/dev/urandom"
    }
}

/// A virtio-vsock device, proxied by the VMM to a Unix socket on the host.
public struct VsockSpec: Codable, Hashable, Sendable {
    /// The guest's context id (3 … 4294967294).
    public var cid: Int
    /// The host-side Unix socket; the node places one in the VM's runtime directory when omitted.
    public var socket: String?

    public init(cid: Int, socket: String? = nil) {
        self.cid = cid
        self.socket = socket
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case cid, socket
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        cid = try c.decode(Int.self, forKey: .cid)
        socket = try c.decodeIfPresent(String.self, forKey: .socket)
    }
}

/// An I/O rate limiter: independent byte and operation budgets.
public struct RateLimiterSpec: Codable, Hashable, Sendable {
    /// Bytes: `size` bytes per `refill_time` ms.
    public var bandwidth: TokenBucketSpec?
    /// Operations: `size` operations per `refill_time` ms.
    public var ops: TokenBucketSpec?

    public init(bandwidth: TokenBucketSpec? = nil, ops: TokenBucketSpec? = nil) {
        self.bandwidth = bandwidth
        self.ops = ops
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case bandwidth, ops
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        bandwidth = try c.decodeIfPresent(TokenBucketSpec.self, forKey: .bandwidth)
        ops = try c.decodeIfPresent(TokenBucketSpec.self, forKey: .ops)
    }
}

/// A token bucket: `size` tokens, refilled over `refill_time` milliseconds, plus an initial burst.
public struct TokenBucketSpec: Codable, Hashable, Sendable {
    public var size: Int
    /// Milliseconds to refill the whole bucket.
    public var refillTime: Int
    public var oneTimeBurst: Int?

    public init(size: Int, refillTime: Int, oneTimeBurst: Int? = nil) {
        self.size = size
        self.refillTime = refillTime
        self.oneTimeBurst = oneTimeBurst
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case size, refillTime = "refill_time", oneTimeBurst = "one_time_burst"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        size = try c.decode(Int.self, forKey: .size)
        refillTime = try c.decode(Int.self, forKey: .refillTime)
        oneTimeBurst = try c.decodeIfPresent(Int.self, forKey: .oneTimeBurst)
    }
}

/// A rate limit shared by every disk that names it in `rate_limit_group`.
public struct RateLimitGroupSpec: Codable, Hashable, Sendable {
    public var id: String
    public var rateLimiter: RateLimiterSpec

    public init(id: String, rateLimiter: RateLimiterSpec) {
        self.id = id
        self.rateLimiter = rateLimiter
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, rateLimiter = "rate_limiter"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        rateLimiter = try c.decode(RateLimiterSpec.self, forKey: .rateLimiter)
    }
}
