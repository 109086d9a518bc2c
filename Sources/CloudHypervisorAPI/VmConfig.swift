// Request bodies the node sends to cloud-hypervisor, mirroring the component schemas of the bundled
// OpenAPI document (field names exactly as there). A property is optional when the document does
// not require it, and a `nil` property is left out of the JSON (never sent as null).

/// `VmConfig`: the body of `vm.create`, and `config` in `vm.info`.
public struct VmConfig: Codable, Hashable, Sendable {
    public var cpus: CpusConfig?
    public var memory: MemoryConfig?
    public var payload: PayloadConfig
    public var rateLimitGroups: [RateLimitGroupConfig]?
    public var disks: [DiskConfig]?
    public var net: [NetConfig]?
    public var rng: RngConfig?
    public var serial: SerialConfig?
    public var console: ConsoleConfig?
    public var vsock: VsockConfig?
    public var iommu: Bool?
    public var platform: PlatformConfig?

    public init(cpus: CpusConfig? = nil, memory: MemoryConfig? = nil, payload: PayloadConfig,
                rateLimitGroups: [RateLimitGroupConfig]? = nil, disks: [DiskConfig]? = nil, net: [NetConfig]? = nil,
                rng: RngConfig? = nil, serial: SerialConfig? = nil, console: ConsoleConfig? = nil,
                vsock: VsockConfig? = nil, iommu: Bool? = nil, platform: PlatformConfig? = nil) {
        self.cpus = cpus
        self.memory = memory
        self.payload = payload
        self.rateLimitGroups = rateLimitGroups
        self.disks = disks
        self.net = net
        self.rng = rng
        self.serial = serial
        self.console = console
        self.vsock = vsock
        self.iommu = iommu
        self.platform = platform
    }

    enum CodingKeys: String, CodingKey {
        case cpus, memory, payload, rateLimitGroups = "rate_limit_groups", disks, net, rng, serial, console
        case vsock, iommu, platform
    }
}

/// `CpusConfig`
public struct CpusConfig: Codable, Hashable, Sendable {
    public var bootVcpus: Int
    public var maxVcpus: Int
    public var topology: CpuTopology?
    public var kvmHyperv: Bool?
    public var maxPhysBits: Int?
    public var nested: Bool?
    public var affinity: [CpuAffinity]?

    public init(bootVcpus: Int, maxVcpus: Int, topology: CpuTopology? = nil, kvmHyperv: Bool? = nil,
                maxPhysBits: Int? = nil, nested: Bool? = nil, affinity: [CpuAffinity]? = nil) {
        self.bootVcpus = bootVcpus
        self.maxVcpus = maxVcpus
        self.topology = topology
        self.kvmHyperv = kvmHyperv
        self.maxPhysBits = maxPhysBits
        self.nested = nested
        self.affinity = affinity
    }

    enum CodingKeys: String, CodingKey {
        case bootVcpus = "boot_vcpus", maxVcpus = "max_vcpus", topology, kvmHyperv = "kvm_hyperv"
        case maxPhysBits = "max_phys_bits", nested, affinity
    }
}

/// `CpuTopology` (the document requires no field; cloud-hypervisor needs all four).
public struct CpuTopology: Codable, Hashable, Sendable {
    public var threadsPerCore: Int
    public var coresPerDie: Int
    public var diesPerPackage: Int
    public var packages: Int

    public init(threadsPerCore: Int, coresPerDie: Int, diesPerPackage: Int, packages: Int) {
        self.threadsPerCore = threadsPerCore
        self.coresPerDie = coresPerDie
        self.diesPerPackage = diesPerPackage
        self.packages = packages
    }

    enum CodingKeys: String, CodingKey {
        case threadsPerCore = "threads_per_core", coresPerDie = "cores_per_die"
        case diesPerPackage = "dies_per_package", packages
    }
}

/// `CpuAffinity`
public struct CpuAffinity: Codable, Hashable, Sendable {
    public var vcpu: Int
    public var hostCpus: [Int]

    public init(vcpu: Int, hostCpus: [Int]) {
        self.vcpu = vcpu
        self.hostCpus = hostCpus
    }

    enum CodingKeys: String, CodingKey {
        case vcpu, hostCpus = "host_cpus"
    }
}

/// `MemoryConfig`
public struct MemoryConfig: Codable, Hashable, Sendable {
    public var size: Int
    public var hotplugSize: Int?
    public var hotpluggedSize: Int?
    public var mergeable: Bool?
    public var hotplugMethod: String?
    public var shared: Bool?
    public var hugepages: Bool?
    public var hugepageSize: Int?
    public var prefault: Bool?
    public var reserve: Bool?
    public var thp: Bool?

    public init(size: Int, hotplugSize: Int? = nil, hotpluggedSize: Int? = nil, mergeable: Bool? = nil,
                hotplugMethod: String? = nil, shared: Bool? = nil, hugepages: Bool? = nil, hugepageSize: Int? = nil,
                prefault: Bool? = nil, reserve: Bool? = nil, thp: Bool? = nil) {
        self.size = size
        self.hotplugSize = hotplugSize
        self.hotpluggedSize = hotpluggedSize
        self.mergeable = mergeable
        self.hotplugMethod = hotplugMethod
        self.shared = shared
        self.hugepages = hugepages
        self.hugepageSize = hugepageSize
        self.prefault = prefault
        self.reserve = reserve
        self.thp = thp
    }

    enum CodingKeys: String, CodingKey {
        case size, hotplugSize = "hotplug_size", hotpluggedSize = "hotplugged_size", mergeable
        case hotplugMethod = "hotplug_method", shared, hugepages, hugepageSize = "hugepage_size"
        case prefault, reserve, thp
    }
}

/// `PayloadConfig`
public struct PayloadConfig: Codable, Hashable, Sendable {
    public var firmware: String?
    public var kernel: String?
    public var cmdline: String?
    public var initramfs: String?
    public var igvm: String?
    public var hostData: String?

    public init(firmware: String? = nil, kernel: String? = nil, cmdline: String? = nil, initramfs: String? = nil,
                igvm: String? = nil, hostData: String? = nil) {
        self.firmware = firmware
        self.kernel = kernel
        self.cmdline = cmdline
        self.initramfs = initramfs
        self.igvm = igvm
        self.hostData = hostData
    }

    enum CodingKeys: String, CodingKey {
        case firmware, kernel, cmdline, initramfs, igvm, hostData = "host_data"
    }
}

/// `TokenBucket`
public struct TokenBucket: Codable, Hashable, Sendable {
    public var size: Int
    public var oneTimeBurst: Int?
    /// Milliseconds.
    public var refillTime: Int

    public init(size: Int, oneTimeBurst: Int? = nil, refillTime: Int) {
        self.size = size
        self.oneTimeBurst = oneTimeBurst
        self.refillTime = refillTime
    }

    enum CodingKeys: String, CodingKey {
        case size, oneTimeBurst = "one_time_burst", refillTime = "refill_time"
    }
}

/// `RateLimiterConfig`
public struct RateLimiterConfig: Codable, Hashable, Sendable {
    public var bandwidth: TokenBucket?
    public var ops: TokenBucket?

    public init(bandwidth: TokenBucket? = nil, ops: TokenBucket? = nil) {
        self.bandwidth = bandwidth
        self.ops = ops
    }
}

/// `RateLimitGroupConfig`
public struct RateLimitGroupConfig: Codable, Hashable, Sendable {
    public var id: String
    public var rateLimiterConfig: RateLimiterConfig

    public init(id: String, rateLimiterConfig: RateLimiterConfig) {
        self.id = id
        self.rateLimiterConfig = rateLimiterConfig
    }

    enum CodingKeys: String, CodingKey {
        case id, rateLimiterConfig = "rate_limiter_config"
    }
}

/// `DiskConfig`: in `VmConfig.disks` and the body of `vm.add-disk`.
public struct DiskConfig: Codable, Hashable, Sendable {
    public var path: String?
    public var readonly: Bool?
    public var direct: Bool?
    public var iommu: Bool?
    public var numQueues: Int?
    public var queueSize: Int?
    public var vhostUser: Bool?
    public var vhostSocket: String?
    public var rateLimiterConfig: RateLimiterConfig?
    public var pciSegment: Int?
    public var pciDeviceId: Int?
    public var id: String?
    public var serial: String?
    public var rateLimitGroup: String?

    public init(path: String? = nil, readonly: Bool? = nil, direct: Bool? = nil, iommu: Bool? = nil,
                numQueues: Int? = nil, queueSize: Int? = nil, vhostUser: Bool? = nil, vhostSocket: String? = nil,
                rateLimiterConfig: RateLimiterConfig? = nil, pciSegment: Int? = nil, pciDeviceId: Int? = nil,
                id: String? = nil, serial: String? = nil, rateLimitGroup: String? = nil) {
        self.path = path
        self.readonly = readonly
        self.direct = direct
        self.iommu = iommu
        self.numQueues = numQueues
        self.queueSize = queueSize
        self.vhostUser = vhostUser
        self.vhostSocket = vhostSocket
        self.rateLimiterConfig = rateLimiterConfig
        self.pciSegment = pciSegment
        self.pciDeviceId = pciDeviceId
        self.id = id
        self.serial = serial
        self.rateLimitGroup = rateLimitGroup
    }

    enum CodingKeys: String, CodingKey {
        case path, readonly, direct, iommu, numQueues = "num_queues", queueSize = "queue_size"
        case vhostUser = "vhost_user", vhostSocket = "vhost_socket", rateLimiterConfig = "rate_limiter_config"
        case pciSegment = "pci_segment", pciDeviceId = "pci_device_id", id, serial
        case rateLimitGroup = "rate_limit_group"
    }
}

/// `vhost_mode` of `NetConfig` (a string in the document; these are the values cloud-hypervisor accepts).
public enum VhostMode: String, Codable, Hashable, Sendable, CaseIterable {
    case client = "Client"
    case server = "Server"
}

/// `NetConfig`: in `VmConfig.net` and the body of `vm.add-net`.
public struct NetConfig: Codable, Hashable, Sendable {
    public var tap: String?
    public var ip: String?
    public var mask: String?
    public var mac: String?
    public var hostMac: String?
    public var mtu: Int?
    public var iommu: Bool?
    /// Virtqueues: two per queue pair; with fds passed to `vm.add-net`, twice the number of fds.
    public var numQueues: Int?
    public var queueSize: Int?
    public var vhostUser: Bool?
    public var vhostSocket: String?
    public var vhostMode: VhostMode?
    public var id: String?
    public var pciSegment: Int?
    public var pciDeviceId: Int?
    public var rateLimiterConfig: RateLimiterConfig?
    public var offloadTso: Bool?
    public var offloadUfo: Bool?
    public var offloadCsum: Bool?

    public init(tap: String? = nil, ip: String? = nil, mask: String? = nil, mac: String? = nil, hostMac: String? = nil,
                mtu: Int? = nil, iommu: Bool? = nil, numQueues: Int? = nil, queueSize: Int? = nil,
                vhostUser: Bool? = nil, vhostSocket: String? = nil, vhostMode: VhostMode? = nil, id: String? = nil,
                pciSegment: Int? = nil, pciDeviceId: Int? = nil, rateLimiterConfig: RateLimiterConfig? = nil,
                offloadTso: Bool? = nil, offloadUfo: Bool? = nil, offloadCsum: Bool? = nil) {
        self.tap = tap
        self.ip = ip
        self.mask = mask
        self.mac = mac
        self.hostMac = hostMac
        self.mtu = mtu
        self.iommu = iommu
        self.numQueues = numQueues
        self.queueSize = queueSize
        self.vhostUser = vhostUser
        self.vhostSocket = vhostSocket
        self.vhostMode = vhostMode
        self.id = id
        self.pciSegment = pciSegment
        self.pciDeviceId = pciDeviceId
        self.rateLimiterConfig = rateLimiterConfig
        self.offloadTso = offloadTso
        self.offloadUfo = offloadUfo
        self.offloadCsum = offloadCsum
    }

    enum CodingKeys: String, CodingKey {
        case tap, ip, mask, mac, hostMac = "host_mac", mtu, iommu, numQueues = "num_queues", queueSize = "queue_size"
        case vhostUser = "vhost_user", vhostSocket = "vhost_socket", vhostMode = "vhost_mode", id
        case pciSegment = "pci_segment", pciDeviceId = "pci_device_id", rateLimiterConfig = "rate_limiter_config"
        case offloadTso = "offload_tso", offloadUfo = "offload_ufo", offloadCsum = "offload_csum"
    }
}

/// `RngConfig`
public struct RngConfig: Codable, Hashable, Sendable {
    public var src: String
    public var id: String?
    public var iommu: Bool?
    public var pciSegment: Int?

    public init(src: String, id: String? = nil, iommu: Bool? = nil, pciSegment: Int? = nil) {
        self.src = src
        self.id = id
        self.iommu = iommu
        self.pciSegment = pciSegment
    }

    enum CodingKeys: String, CodingKey {
        case src, id, iommu, pciSegment = "pci_segment"
    }
}

/// `ConsoleMode`
public enum ConsoleMode: String, Codable, Hashable, Sendable, CaseIterable {
    case off = "Off", pty = "Pty", tty = "Tty", file = "File", socket = "Socket", null = "Null"
}

/// `SerialConfig`: the legacy serial port.
public struct SerialConfig: Codable, Hashable, Sendable {
    public var mode: ConsoleMode
    public var file: String?
    public var socket: String?

    public init(mode: ConsoleMode, file: String? = nil, socket: String? = nil) {
        self.mode = mode
        self.file = file
        self.socket = socket
    }
}

/// `ConsoleConfig`: the virtio console.
public struct ConsoleConfig: Codable, Hashable, Sendable {
    public var mode: ConsoleMode
    public var file: String?
    public var socket: String?
    public var iommu: Bool?
    public var id: String?
    public var pciSegment: Int?

    public init(mode: ConsoleMode, file: String? = nil, socket: String? = nil, iommu: Bool? = nil,
                id: String? = nil, pciSegment: Int? = nil) {
        self.mode = mode
        self.file = file
        self.socket = socket
        self.iommu = iommu
        self.id = id
        self.pciSegment = pciSegment
    }

    enum CodingKeys: String, CodingKey {
        case mode, file, socket, iommu, id, pciSegment = "pci_segment"
    }
}

/// `VsockConfig`: in `VmConfig.vsock` and the body of `vm.add-vsock`.
public struct VsockConfig: Codable, Hashable, Sendable {
    public var cid: Int
    public var socket: String
    public var iommu: Bool?
    public var pciSegment: Int?
    public var id: String?

    public init(cid: Int, socket: String, iommu: Bool? = nil, pciSegment: Int? = nil, id: String? = nil) {
        self.cid = cid
        self.socket = socket
        self.iommu = iommu
        self.pciSegment = pciSegment
        self.id = id
    }

    enum CodingKeys: String, CodingKey {
        case cid, socket, iommu, pciSegment = "pci_segment", id
    }
}

/// `PlatformConfig` (the part the node sets).
public struct PlatformConfig: Codable, Hashable, Sendable {
    /// Needed when a device sits on a PCI segment other than 0 (cloud-hypervisor's default is 1 segment).
    public var numPciSegments: Int?
    public var iommuSegments: [Int]?
    public var systemUuid: String?

    public init(numPciSegments: Int? = nil, iommuSegments: [Int]? = nil, systemUuid: String? = nil) {
        self.numPciSegments = numPciSegments
        self.iommuSegments = iommuSegments
        self.systemUuid = systemUuid
    }

    enum CodingKeys: String, CodingKey {
        case numPciSegments = "num_pci_segments", iommuSegments = "iommu_segments", systemUuid = "system_uuid"
    }
}

/// `DeviceConfig`: the body of `vm.add-device` (VFIO passthrough).
public struct DeviceConfig: Codable, Hashable, Sendable {
    public var path: String?
    public var iommu: Bool?
    public var pciSegment: Int?
    public var id: String?

    public init(path: String? = nil, iommu: Bool? = nil, pciSegment: Int? = nil, id: String? = nil) {
        self.path = path
        self.iommu = iommu
        self.pciSegment = pciSegment
        self.id = id
    }

    enum CodingKeys: String, CodingKey {
        case path, iommu, pciSegment = "pci_segment", id
    }
}

/// `VmResize`: the body of `vm.resize`.
public struct VmResize: Codable, Hashable, Sendable {
    public var desiredVcpus: Int?
    /// Bytes.
    public var desiredRam: Int?
    /// Bytes.
    public var desiredBalloon: Int?

    public init(desiredVcpus: Int? = nil, desiredRam: Int? = nil, desiredBalloon: Int? = nil) {
        self.desiredVcpus = desiredVcpus
        self.desiredRam = desiredRam
        self.desiredBalloon = desiredBalloon
    }

    enum CodingKeys: String, CodingKey {
        case desiredVcpus = "desired_vcpus", desiredRam = "desired_ram", desiredBalloon = "desired_balloon"
    }
}

/// `VmRemoveDevice`: the body of `vm.remove-device`.
public struct VmRemoveDevice: Codable, Hashable, Sendable {
    public var id: String?

    public init(id: String?) {
        self.id = id
    }
}
