public import Foundation

/// An operator's description of one virtual machine: the JSON document operators write and the
/// control protocol carries (snake_case keys; an unknown key is a decoding error naming it).
///
/// Decoding checks only the shape (types, enum values, known keys); ``validate()`` checks the values
/// and reports every problem at once. Paths to files on the node are checked by the node.
public struct VMSpec: Codable, Hashable, Sendable {
    /// The operator's name for the VM (safe charset, see ``SpecIdentifier``).
    public var name: String
    /// A stable identifier, when the control plane assigned one (same charset as `name`).
    public var id: String?
    public var cpus: CPUSpec
    public var memory: MemorySpec
    public var payload: PayloadSpec
    public var disks: [DiskSpec]
    public var nics: [NICSpec]
    /// The legacy serial port; `null` (device present, output discarded) when omitted.
    public var serial: ConsoleSpec
    /// The virtio console; `off` (no device) when omitted.
    public var console: ConsoleSpec
    /// The virtio-rng device; its source is `/dev/urandom` when omitted.
    public var rng: RNGSpec
    public var vsock: VsockSpec?
    public var rateLimitGroups: [RateLimitGroupSpec]

    public init(
        name: String, id: String? = nil, cpus: CPUSpec, memory: MemorySpec, payload: PayloadSpec,
        disks: [DiskSpec] = [], nics: [NICSpec] = [],
        serial: ConsoleSpec = .defaultSerial, console: ConsoleSpec = .defaultConsole,
        rng: RNGSpec = RNGSpec(), vsock: VsockSpec? = nil, rateLimitGroups: [RateLimitGroupSpec] = []
    ) {
        self.name = name
        self.id = id
        self.cpus = cpus
        self.memory = memory
        self.payload = payload
        self.disks = disks
        self.nics = nics
        self.serial = serial
        self.console = console
        self.rng = rng
        self.vsock = vsock
        self.rateLimitGroups = rateLimitGroups
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, id, cpus, memory, payload, disks, nics, serial, console, rng, vsock
        case rateLimitGroups = "rate_limit_groups"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        id = try c.decodeIfPresent(String.self, forKey: .id)
        cpus = try c.decode(CPUSpec.self, forKey: .cpus)
        memory = try c.decode(MemorySpec.self, forKey: .memory)
        payload = try c.decode(PayloadSpec.self, forKey: .payload)
        disks = try c.decodeIfPresent([DiskSpec].self, forKey: .disks) ?? []
        nics = try c.decodeIfPresent([NICSpec].self, forKey: .nics) ?? []
        serial = try c.decodeIfPresent(ConsoleSpec.self, forKey: .serial) ?? .defaultSerial
        console = try c.decodeIfPresent(ConsoleSpec.self, forKey: .console) ?? .defaultConsole
        rng = try c.decodeIfPresent(RNGSpec.self, forKey: .rng) ?? RNGSpec()
        vsock = try c.decodeIfPresent(VsockSpec.self, forKey: .vsock)
        rateLimitGroups = try c.decodeIfPresent([RateLimitGroupSpec].self, forKey: .rateLimitGroups) ?? []
    }

    /// Decodes a specification from JSON, turning Foundation's errors into a field path and a reason.
    public static func decode(json: Data) throws(SpecDecodingError) -> VMSpec {
        do {
            return try JSONDecoder().decode(VMSpec.self, from: json)
        } catch let error as DecodingError {
            throw SpecDecodingError(error)
        } catch {
            throw SpecDecodingError(field: "", reason: "not valid JSON: \(error)")
        }
    }

    /// The JSON form: sorted keys, every default written out, sizes in bytes.
    public func encodedJSON(pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                                          : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// vCPUs: how many at boot, how many at most (hotplug), their topology and host pinning.
public struct CPUSpec: Codable, Hashable, Sendable {
    public var bootVCPUs: Int
    /// At most this many vCPUs (hotplug); equal to `boot_vcpus` when omitted.
    public var maxVCPUs: Int
    public var topology: CPUTopologySpec?
    /// Expose Hyper-V enlightenments to the guest.
    public var kvmHyperV: Bool
    public var affinity: [CPUAffinitySpec]

    public init(bootVCPUs: Int, maxVCPUs: Int? = nil, topology: CPUTopologySpec? = nil,
                kvmHyperV: Bool = false, affinity: [CPUAffinitySpec] = []) {
        self.bootVCPUs = bootVCPUs
        self.maxVCPUs = maxVCPUs ?? bootVCPUs
        self.topology = topology
        self.kvmHyperV = kvmHyperV
        self.affinity = affinity
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case bootVCPUs = "boot_vcpus", maxVCPUs = "max_vcpus", topology
        case kvmHyperV = "kvm_hyperv", affinity
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        bootVCPUs = try c.decode(Int.self, forKey: .bootVCPUs)
        maxVCPUs = try c.decodeIfPresent(Int.self, forKey: .maxVCPUs) ?? bootVCPUs
        topology = try c.decodeIfPresent(CPUTopologySpec.self, forKey: .topology)
        kvmHyperV = try c.decodeIfPresent(Bool.self, forKey: .kvmHyperV) ?? false
        affinity = try c.decodeIfPresent([CPUAffinitySpec].self, forKey: .affinity) ?? []
    }
}

/// The guest's CPU topology; the product of the four parts must equal `max_vcpus`.
public struct CPUTopologySpec: Codable, Hashable, Sendable {
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

    enum CodingKeys: String, CodingKey, CaseIterable {
        case threadsPerCore = "threads_per_core", coresPerDie = "cores_per_die"
        case diesPerPackage = "dies_per_package", packages
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        threadsPerCore = try c.decode(Int.self, forKey: .threadsPerCore)
        coresPerDie = try c.decode(Int.self, forKey: .coresPerDie)
        diesPerPackage = try c.decode(Int.self, forKey: .diesPerPackage)
        packages = try c.decode(Int.self, forKey: .packages)
    }
}

/// Pins one vCPU to a set of host CPUs.
public struct CPUAffinitySpec: Codable, Hashable, Sendable {
    public var vcpu: Int
    public var hostCPUs: [Int]

    public init(vcpu: Int, hostCPUs: [Int]) {
        self.vcpu = vcpu
        self.hostCPUs = hostCPUs
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case vcpu, hostCPUs = "host_cpus"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        vcpu = try c.decode(Int.self, forKey: .vcpu)
        hostCPUs = try c.decode([Int].self, forKey: .hostCPUs)
    }
}

/// Guest memory. Sizes accept bytes or strings such as `"512M"` (see ``ByteSize``).
public struct MemorySpec: Codable, Hashable, Sendable {
    public var size: ByteSize
    /// Room for memory hotplug on top of `size`.
    public var hotplugSize: ByteSize?
    /// Back guest memory with hugetlbfs pages (the node reserves them before launch).
    public var hugepages: Bool
    /// 2 MiB or 1 GiB; only with `hugepages`; 2 MiB when omitted.
    public var hugepageSize: ByteSize?
    /// Map guest memory shared (needed by vhost-user devices).
    public var shared: Bool
    /// Let KSM merge identical pages.
    public var mergeable: Bool
    /// Touch all guest memory at boot.
    public var prefault: Bool
    /// Allow transparent huge pages (ignored with `hugepages`).
    public var thp: Bool

    public init(size: ByteSize, hotplugSize: ByteSize? = nil, hugepages: Bool = false, hugepageSize: ByteSize? = nil,
                shared: Bool = false, mergeable: Bool = false, prefault: Bool = false, thp: Bool = true) {
        self.size = size
        self.hotplugSize = hotplugSize
        self.hugepages = hugepages
        self.hugepageSize = hugepageSize
        self.shared = shared
        self.mergeable = mergeable
        self.prefault = prefault
        self.thp = thp
    }

    /// The page size used with `hugepages`: `hugepage_size`, or 2 MiB.
    public var effectiveHugepageSize: ByteSize { hugepageSize ?? .mebibytes(2) }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case size, hotplugSize = "hotplug_size", hugepages, hugepageSize = "hugepage_size"
        case shared, mergeable, prefault, thp
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        size = try c.decode(ByteSize.self, forKey: .size)
        hotplugSize = try c.decodeIfPresent(ByteSize.self, forKey: .hotplugSize)
        hugepages = try c.decodeIfPresent(Bool.self, forKey: .hugepages) ?? false
        hugepageSize = try c.decodeIfPresent(ByteSize.self, forKey: .hugepageSize)
        shared = try c.decodeIfPresent(Bool.self, forKey: .shared) ?? false
        mergeable = try c.decodeIfPresent(Bool.self, forKey: .mergeable) ?? false
        prefault = try c.decodeIfPresent(Bool.self, forKey: .prefault) ?? false
        thp = try c.decodeIfPresent(Bool.self, forKey: .thp) ?? true
    }
}

/// What the guest boots: a kernel (PVH ELF or bzImage) with optional initramfs and command line,
/// or a firmware image.
public struct PayloadSpec: Codable, Hashable, Sendable {
    public var kernel: String?
    public var initramfs: String?
    public var cmdline: String?
    public var firmware: String?

    public init(kernel: String? = nil, initramfs: String? = nil, cmdline: String? = nil, firmware: String? = nil) {
        self.kernel = kernel
        self.initramfs = initramfs
        self.cmdline = cmdline
        self.firmware = firmware
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kernel, initramfs, cmdline, firmware
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        kernel = try c.decodeIfPresent(String.self, forKey: .kernel)
        initramfs = try c.decodeIfPresent(String.self, forKey: .initramfs)
        cmdline = try c.decodeIfPresent(String.self, forKey: .cmdline)
        firmware = try c.decodeIfPresent(String.self, forKey: .firmware)
    }
}
