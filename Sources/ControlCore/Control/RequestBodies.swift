public import VMModel

/// `POST /v1/vms`.
public struct CreateVMBody: Codable, Sendable, Hashable {
    public var spec: VMSpec
    public var vmm: VMMBackend?
    /// Pin to this node (name or id).
    public var node: String?
    /// NIC id → network name; the network's bridge or parent and MTU are filled in at placement.
    public var networks: [String: String]?
    /// Boot the VM once created.
    public var start: Bool?

    public init(spec: VMSpec, vmm: VMMBackend? = nil, node: String? = nil, networks: [String: String]? = nil, start: Bool? = nil) {
        self.spec = spec
        self.vmm = vmm
        self.node = node
        self.networks = networks
        self.start = start
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case spec, vmm, node, networks, start }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictBody(CodingKeys.self)
        spec = try c.decode(VMSpec.self, forKey: .spec)
        vmm = try c.decodeIfPresent(VMMBackend.self, forKey: .vmm)
        node = try c.decodeIfPresent(String.self, forKey: .node)
        networks = try c.decodeIfPresent([String: String].self, forKey: .networks)
        start = try c.decodeIfPresent(Bool.self, forKey: .start)
    }
}

/// `POST /v1/nodes`: declare a node before it first connects.
public struct RegisterNodeBody: Codable, Sendable, Hashable {
    public var name: String
    public var address: String

    public init(name: String, address: String) {
        self.name = name
        self.address = address
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, address }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictBody(CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        address = try c.decode(String.self, forKey: .address)
    }
}

/// `PUT /v1/nodes/{id}/maintenance`.
public struct MaintenanceBody: Codable, Sendable, Hashable {
    public var enabled: Bool

    public init(enabled: Bool) { self.enabled = enabled }

    enum CodingKeys: String, CodingKey, CaseIterable { case enabled }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictBody(CodingKeys.self)
        enabled = try c.decode(Bool.self, forKey: .enabled)
    }
}

/// `POST /v1/networks`.
public struct CreateNetworkBody: Codable, Sendable, Hashable {
    public var name: String
    /// Node name or id.
    public var node: String
    public var kind: NetworkKind
    /// The bridge (`bridge`) or host link (`macvtap`).
    public var parent: String
    public var mtu: Int?

    public init(name: String, node: String, kind: NetworkKind, parent: String, mtu: Int? = nil) {
        self.name = name
        self.node = node
        self.kind = kind
        self.parent = parent
        self.mtu = mtu
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, node, kind, parent, mtu }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictBody(CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        node = try c.decode(String.self, forKey: .node)
        kind = try c.decode(NetworkKind.self, forKey: .kind)
        parent = try c.decode(String.self, forKey: .parent)
        mtu = try c.decodeIfPresent(Int.self, forKey: .mtu)
    }
}

/// `POST /v1/rate-limit-groups`.
public struct CreateRateLimitGroupBody: Codable, Sendable, Hashable {
    public var name: String
    public var rateLimiter: RateLimiterSpec

    public init(name: String, rateLimiter: RateLimiterSpec) {
        self.name = name
        self.rateLimiter = rateLimiter
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, rateLimiter = "rate_limiter" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictBody(CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        rateLimiter = try c.decode(RateLimiterSpec.self, forKey: .rateLimiter)
    }
}

/// `POST /v1/vms/{id}/nics`.
public struct AddNICBody: Codable, Sendable, Hashable {
    public var nic: NICSpec
    public var network: String?

    public init(nic: NICSpec, network: String? = nil) {
        self.nic = nic
        self.network = network
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case nic, network }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictBody(CodingKeys.self)
        nic = try c.decode(NICSpec.self, forKey: .nic)
        network = try c.decodeIfPresent(String.self, forKey: .network)
    }
}

/// `POST /v1/vms/{id}/disks`.
public struct AddDiskBody: Codable, Sendable, Hashable {
    public var disk: DiskSpec
    /// A registered disk image (name or id) whose path the disk uses.
    public var image: String?

    public init(disk: DiskSpec, image: String? = nil) {
        self.disk = disk
        self.image = image
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case disk, image }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictBody(CodingKeys.self)
        disk = try c.decode(DiskSpec.self, forKey: .disk)
        image = try c.decodeIfPresent(String.self, forKey: .image)
    }
}

