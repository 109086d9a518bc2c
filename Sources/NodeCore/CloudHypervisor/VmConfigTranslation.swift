public import CloudHypervisorAPI
public import VMModel

/// A NIC the node has prepared on the host (TAP or MACVTAP, with its MTU, MAC and master set over
/// netlink) and will hand to the VMM as open file descriptors, one per queue pair.
public struct PreparedNIC: Hashable, Sendable {
    /// The id of the NIC in the specification.
    public let id: String
    /// The host device's name, for logs and inventory; the VMM never opens it by name.
    public let interfaceName: String
    /// How many fds the node passes: one per queue pair (multi-queue TAPs are opened once per pair).
    public let queuePairs: Int
    /// The guest's MAC: the specification's, or the one the node chose.
    public let mac: MACAddress

    public init(id: String, interfaceName: String, queuePairs: Int, mac: MACAddress) {
        self.id = id
        self.interfaceName = interfaceName
        self.queuePairs = queuePairs
        self.mac = mac
    }
}

/// One `vm.add-net` call the node makes between `vm.create` and `vm.boot`.
public struct NetAttachment: Hashable, Sendable {
    public let nicID: String
    /// The request body.
    public let body: NetConfig
    /// The number of TAP fds sent with the request (SCM_RIGHTS), in queue-pair order.
    public let fileDescriptorCount: Int
}

/// What the node sends to cloud-hypervisor to create a VM: the `vm.create` body, then one
/// `vm.add-net` per host-backed NIC, then `vm.boot`.
public struct CloudHypervisorVMPlan: Hashable, Sendable {
    public let vmConfig: VmConfig
    public let netAttachments: [NetAttachment]
}

/// Why a specification could not be turned into cloud-hypervisor requests.
public enum VmConfigTranslationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The specification itself is invalid.
    case invalidSpec(SpecValidationError)
    /// A TAP or MACVTAP NIC has no prepared host device.
    case nicNotPrepared(field: String, id: String)
    /// The prepared device's queue pairs differ from the specification's `num_queues / 2`.
    case queuePairMismatch(field: String, expected: Int, prepared: Int)
    /// A prepared NIC matches no TAP or MACVTAP NIC of the specification.
    case unexpectedPreparedNIC(id: String)
    /// `vsock.socket` is absent and the node gave no default.
    case vsockSocketMissing

    public var description: String {
        switch self {
        case .invalidSpec(let error): error.description
        case .nicNotPrepared(let field, let id): "\(field): NIC \"\(id)\" has no prepared host device"
        case .queuePairMismatch(let field, let expected, let prepared):
            "\(field).num_queues: needs \(expected) queue pairs, the host device has \(prepared)"
        case .unexpectedPreparedNIC(let id): "prepared NIC \"\(id)\" is not a tap or macvtap NIC of the specification"
        case .vsockSocketMissing: "vsock.socket: no socket path given and no default from the node"
        }
    }
}

/// Turns a ``VMSpec`` into the bodies cloud-hypervisor takes (pure; no I/O).
///
/// How the VMM gets each host-backed NIC: the node opens the TAP (or the MACVTAP's private
/// `/dev/tapN` node) itself and hands the fds over with `vm.add-net` and SCM_RIGHTS after
/// `vm.create` and before `vm.boot`. Not by name in `vm.create` (`"tap": NAME`), because
/// cloud-hypervisor opens a named TAP through `/dev/net/tun` with TUNSETIFF — which cannot open a
/// MACVTAP — and then issues SIOCSIFFLAGS (when the link is down) and SIOCSIFMTU (whenever `mtu` is
/// given), both needing CAP_NET_ADMIN, which the VMM process does not have. Not in `vm.create`
/// with fds, because the VMM accepts fds only with `vm.add-net`, `vm.add-device` and `vm.restore`.
/// Not `--net fd=` on the command line, to keep one API path for boot and hotplug.
/// Hence `mtu` and `host_mac` are never sent for such NICs: the node sets both on the host link,
/// and the VMM reads the MTU back from the TAP fd (SIOCGIFMTU, no privilege) to advertise it to the
/// guest. Before boot the VMM answers `vm.add-net` with 204 and no body.
///
/// vhost-user NICs carry no fds and go straight into `vm.create`'s `net`.
/// Serial and console are always sent explicitly: the VMM's defaults (serial `Null`, console `Tty`
/// on its stdout) are not what the specification says when it omits them.
public enum VmConfigTranslation {
    /// The plan for `spec`, after validating it. `preparedNICs` has one entry per TAP or MACVTAP NIC;
    /// `defaultVsockSocket` is used when the specification's vsock names no socket.
    public static func plan(
        for spec: VMSpec, preparedNICs: [PreparedNIC], defaultVsockSocket: String? = nil
    ) throws(VmConfigTranslationError) -> CloudHypervisorVMPlan {
        let problems = spec.validate()
        guard problems.isEmpty else { throw .invalidSpec(SpecValidationError(problems: problems)) }

        var prepared: [String: PreparedNIC] = [:]
        for nic in preparedNICs { prepared[nic.id] = nic }
        var vhostUserNets: [NetConfig] = []
        var attachments: [NetAttachment] = []
        for (index, nic) in spec.nics.enumerated() {
            let field = "nics[\(index)]"
            switch nic.kind {
            case .vhostUser:
                vhostUserNets.append(vhostUserNet(nic))
            case .tap, .macvtap:
                guard let host = prepared.removeValue(forKey: nic.id) else { throw .nicNotPrepared(field: field, id: nic.id) }
                guard host.queuePairs == nic.numQueues / 2 else {
                    throw .queuePairMismatch(field: field, expected: nic.numQueues / 2, prepared: host.queuePairs)
                }
                attachments.append(NetAttachment(nicID: nic.id, body: fdBackedNet(nic, host: host),
                                                 fileDescriptorCount: host.queuePairs))
            }
        }
        if let leftover = prepared.keys.sorted().first { throw .unexpectedPreparedNIC(id: leftover) }

        var vsock: VsockConfig?
        if let spec = spec.vsock {
            guard let socket = spec.socket ?? defaultVsockSocket else { throw .vsockSocketMissing }
            vsock = VsockConfig(cid: spec.cid, socket: socket)
        }
        let highestSegment = (spec.disks.map(\.pciSegment) + spec.nics.map(\.pciSegment)).max() ?? 0

        let config = VmConfig(
            cpus: cpus(spec.cpus),
            memory: memory(spec.memory),
            payload: PayloadConfig(firmware: spec.payload.firmware, kernel: spec.payload.kernel,
                                   cmdline: spec.payload.cmdline, initramfs: spec.payload.initramfs),
            rateLimitGroups: spec.rateLimitGroups.isEmpty ? nil : spec.rateLimitGroups.map {
                RateLimitGroupConfig(id: $0.id, rateLimiterConfig: rateLimiter($0.rateLimiter))
            },
            disks: spec.disks.isEmpty ? nil : spec.disks.map(disk),
            net: vhostUserNets.isEmpty ? nil : vhostUserNets,
            rng: RngConfig(src: spec.rng.source),
            serial: SerialConfig(mode: consoleMode(spec.serial.mode),
                                 file: spec.serial.mode == .file ? spec.serial.path : nil,
                                 socket: spec.serial.mode == .socket ? spec.serial.path : nil),
            console: ConsoleConfig(mode: consoleMode(spec.console.mode),
                                   file: spec.console.mode == .file ? spec.console.path : nil),
            vsock: vsock,
            platform: highestSegment > 0 ? PlatformConfig(numPciSegments: highestSegment + 1) : nil
        )
        return CloudHypervisorVMPlan(vmConfig: config, netAttachments: attachments)
    }

    /// The `vm.add-net` body for hot-plugging `nic` into a running VM, with `host`'s fds.
    public static func hotplugNet(_ nic: NICSpec, host: PreparedNIC) -> NetConfig {
        fdBackedNet(nic, host: host)
    }

    /// The `vm.add-disk` body for hot-plugging `disk` into a running VM.
    public static func hotplugDisk(_ disk: DiskSpec) -> DiskConfig {
        self.disk(disk)
    }

    static func cpus(_ cpus: CPUSpec) -> CpusConfig {
        CpusConfig(
            bootVcpus: cpus.bootVCPUs, maxVcpus: cpus.maxVCPUs,
            topology: cpus.topology.map {
                CpuTopology(threadsPerCore: $0.threadsPerCore, coresPerDie: $0.coresPerDie,
                            diesPerPackage: $0.diesPerPackage, packages: $0.packages)
            },
            kvmHyperv: cpus.kvmHyperV,
            affinity: cpus.affinity.isEmpty ? nil : cpus.affinity.map { CpuAffinity(vcpu: $0.vcpu, hostCpus: $0.hostCPUs) }
        )
    }

    static func memory(_ memory: MemorySpec) -> MemoryConfig {
        // The hugepage size is always explicit: without it the VMM takes the host's default size.
        MemoryConfig(
            size: memory.size.bytes, hotplugSize: memory.hotplugSize?.bytes, mergeable: memory.mergeable,
            shared: memory.shared, hugepages: memory.hugepages,
            hugepageSize: memory.hugepages ? memory.effectiveHugepageSize.bytes : nil,
            prefault: memory.prefault, thp: memory.thp
        )
    }

    static func disk(_ disk: DiskSpec) -> DiskConfig {
        DiskConfig(
            path: disk.path, readonly: disk.readonly, direct: disk.direct, numQueues: disk.numQueues,
            queueSize: disk.queueSize, vhostUser: disk.vhostUser ? true : nil, vhostSocket: disk.vhostSocket,
            rateLimiterConfig: disk.rateLimiter.map(rateLimiter), pciSegment: disk.pciSegment, id: disk.id,
            serial: disk.serial, rateLimitGroup: disk.rateLimitGroup
        )
    }

    static func fdBackedNet(_ nic: NICSpec, host: PreparedNIC) -> NetConfig {
        NetConfig(
            mac: host.mac.description, iommu: nic.iommu ? true : nil, numQueues: nic.numQueues,
            queueSize: nic.queueSize, id: nic.id, pciSegment: nic.pciSegment,
            rateLimiterConfig: nic.rateLimiter.map(rateLimiter),
            offloadTso: nic.offloadTSO, offloadUfo: nic.offloadUFO, offloadCsum: nic.offloadCsum
        )
    }

    static func vhostUserNet(_ nic: NICSpec) -> NetConfig {
        NetConfig(
            mac: nic.mac.flatMap(MACAddress.init)?.description, mtu: nic.mtu, numQueues: nic.numQueues,
            queueSize: nic.queueSize, vhostUser: true, vhostSocket: nic.vhostSocket,
            vhostMode: nic.vhostMode == .server ? .server : .client, id: nic.id, pciSegment: nic.pciSegment,
            offloadTso: nic.offloadTSO, offloadUfo: nic.offloadUFO, offloadCsum: nic.offloadCsum
        )
    }

    static func rateLimiter(_ limiter: RateLimiterSpec) -> RateLimiterConfig {
        RateLimiterConfig(bandwidth: limiter.bandwidth.map(tokenBucket), ops: limiter.ops.map(tokenBucket))
    }

    static func tokenBucket(_ bucket: TokenBucketSpec) -> TokenBucket {
        TokenBucket(size: bucket.size, oneTimeBurst: bucket.oneTimeBurst, refillTime: bucket.refillTime)
    }

    static func consoleMode(_ mode: ConsoleSpec.Mode) -> ConsoleMode {
        switch mode {
        case .off: .off
        case .pty: .pty
        case .tty: .tty
        case .file: .file
        case .socket: .socket
        case .null: .null
        }
    }
}
