/// What a node reports about itself when it connects (and periodically after).
public struct NodeInventory: Codable, Sendable, Hashable {
    /// A pool of hugepages of one size.
    public struct HugepagePool: Codable, Sendable, Hashable {
        public var pageSize: Int
        public var total: Int
        public var free: Int

        public init(pageSize: Int, total: Int, free: Int) {
            self.pageSize = pageSize
            self.total = total
            self.free = free
        }

        enum CodingKeys: String, CodingKey {
            case pageSize = "page_size", total, free
        }
    }

    /// One VMM the node can launch.
    public struct VMM: Codable, Sendable, Hashable {
        public var backend: VMMBackend
        public var version: String

        public init(backend: VMMBackend, version: String) {
            self.backend = backend
            self.version = version
        }
    }

    public var hostname: String
    public var cpus: Int
    public var memoryBytes: Int
    public var hugepages: [HugepagePool]
    public var kvm: Bool
    public var vmms: [VMM]
    public var bridges: [String]
    public var macvtapParents: [String]
    public var nodeVersion: String

    public init(hostname: String, cpus: Int, memoryBytes: Int, hugepages: [HugepagePool] = [], kvm: Bool = true,
                vmms: [VMM] = [], bridges: [String] = [], macvtapParents: [String] = [], nodeVersion: String = "") {
        self.hostname = hostname
        self.cpus = cpus
        self.memoryBytes = memoryBytes
        self.hugepages = hugepages
        self.kvm = kvm
        self.vmms = vmms
        self.bridges = bridges
        self.macvtapParents = macvtapParents
        self.nodeVersion = nodeVersion
    }

    enum CodingKeys: String, CodingKey {
        case hostname, cpus, memoryBytes = "memory_bytes", hugepages, kvm, vmms, bridges
        case macvtapParents = "macvtap_parents", nodeVersion = "node_version"
    }

    /// Free pages of `pageSize` bytes (0 when the node has no such pool).
    public func freeHugepages(pageSize: Int) -> Int {
        hugepages.filter { $0.pageSize == pageSize }.reduce(0) { $0 + $1.free }
    }
}
