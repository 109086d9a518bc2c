public import LinuxSys
import CShims
#if canImport(Glibc)
import Glibc
#endif

/// What `createTap` did.
public struct TapResult: Hashable, Sendable {
    /// The link as the kernel reports it after configuration.
    public let link: LinkInfo
    /// False when an identical TAP existed already and was returned as is.
    public let created: Bool
    /// Offloads the kernel took (nil for an existing TAP: they were set when it was made).
    public let acceptedOffloads: TapOffloads?
    /// Requested offloads the kernel refused (this kernel lacks them).
    public let refusedOffloads: TapOffloads
}

/// What `createMacvtap` did.
public struct MacvtapResult: Hashable, Sendable {
    public let link: LinkInfo
    public let created: Bool
    /// The private character device node made for it (`<deviceDirectory>/<name>`).
    public let devicePath: String
    public let deviceMajor: UInt32
    public let deviceMinor: UInt32
    public var ifindex: Int32 { link.index }
}

/// ethtool features of a link (`ETHTOOL_GFEATURES`, names from `ETH_SS_FEATURES`).
public struct LinkFeatures: Hashable, Sendable {
    /// Feature name → active.
    public let active: [String: Bool]

    public init(active: [String: Bool]) { self.active = active }

    /// The TUN offloads these features show. UFO has no feature bit any more and never appears.
    public var tapOffloads: TapOffloads {
        var offloads: TapOffloads = []
        if active["tx-checksum-ip-generic"] == true { offloads.insert(.checksum) }
        if active["tx-tcp-segmentation"] == true { offloads.insert(.tso4) }
        if active["tx-tcp6-segmentation"] == true { offloads.insert(.tso6) }
        if active["tx-tcp-ecn-segmentation"] == true { offloads.insert(.tsoECN) }
        if active["tx-udp-segmentation"] == true { offloads.formUnion([.uso4, .uso6]) }
        return offloads
    }
}

/// Open descriptors of a TAP's or MACVTAP's queues, one per queue, owned until taken.
public struct QueueDescriptors: ~Copyable, Sendable {
    private var fds: [Int32]

    init(adopting fds: [Int32]) { self.fds = fds }

    public var count: Int { fds.count }

    /// The numbers, still owned by this value.
    public var rawValues: [Int32] { fds }

    /// Takes ownership of the next descriptor (queue order).
    public mutating func next() -> FileDescriptor? {
        if fds.isEmpty { return nil }
        return FileDescriptor(adopting: fds.removeFirst())
    }

    /// Gives up ownership of all; the caller closes them (e.g. after handing them to a VMM).
    public consuming func takeAll() -> [Int32] {
        let all = fds
        fds = []
        return all
    }

    /// The vnet header size the TAP uses, read through the queue at `position`
    /// (`TUNGETVNETHDRSZ`); nil when there is no such queue or it is no TAP fd.
    public func vnetHeaderSize(ofQueue position: Int = 0) -> Int? {
        guard fds.indices.contains(position) else { return nil }
        let size = qx_tap_vnet_hdr_size(fds[position])
        return size < 0 ? nil : Int(size)
    }

    deinit {
        for fd in fds { _ = Glibc.close(fd) }
    }
}
