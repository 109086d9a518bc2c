// Response bodies cloud-hypervisor answers with, mirroring the bundled OpenAPI document.
// Decoding ignores fields the document has and these types leave out.

/// `VmState`
public enum VmState: String, Codable, Hashable, Sendable, CaseIterable {
    case created = "Created", running = "Running", shutdown = "Shutdown", paused = "Paused"
    case breakPoint = "BreakPoint"
}

/// `VmInfo`: the answer to `vm.info`.
public struct VmInfo: Codable, Hashable, Sendable {
    public var config: VmConfig
    public var state: VmState
    public var memoryActualSize: Int?
    public var deviceTree: [String: DeviceNode]?

    public init(config: VmConfig, state: VmState, memoryActualSize: Int? = nil, deviceTree: [String: DeviceNode]? = nil) {
        self.config = config
        self.state = state
        self.memoryActualSize = memoryActualSize
        self.deviceTree = deviceTree
    }

    enum CodingKeys: String, CodingKey {
        case config, state, memoryActualSize = "memory_actual_size", deviceTree = "device_tree"
    }
}

/// `DeviceNode`: one entry of `VmInfo.device_tree`.
public struct DeviceNode: Codable, Hashable, Sendable {
    public var id: String?
    /// Rust enum values the document leaves as untyped objects.
    public var resources: [JSONValue]?
    public var children: [String]?
    public var pciBdf: String?

    public init(id: String? = nil, resources: [JSONValue]? = nil, children: [String]? = nil, pciBdf: String? = nil) {
        self.id = id
        self.resources = resources
        self.children = children
        self.pciBdf = pciBdf
    }

    enum CodingKeys: String, CodingKey {
        case id, resources, children, pciBdf = "pci_bdf"
    }
}

/// `VmmPingResponse`: the answer to `vmm.ping`.
public struct VmmPingResponse: Codable, Hashable, Sendable {
    public var buildVersion: String?
    public var version: String
    public var pid: Int?
    public var features: [String]?

    public init(buildVersion: String? = nil, version: String, pid: Int? = nil, features: [String]? = nil) {
        self.buildVersion = buildVersion
        self.version = version
        self.pid = pid
        self.features = features
    }

    enum CodingKeys: String, CodingKey {
        case buildVersion = "build_version", version, pid, features
    }
}

/// `PciDeviceInfo`: the answer to `vm.add-*` on a running VM.
public struct PciDeviceInfo: Codable, Hashable, Sendable {
    public var id: String
    /// `0000:00:03.0`
    public var bdf: String

    public init(id: String, bdf: String) {
        self.id = id
        self.bdf = bdf
    }
}

/// `VmCounters`: the answer to `vm.counters`: per device id, named counters.
public struct VmCounters: Codable, Hashable, Sendable {
    public var devices: [String: [String: UInt64]]

    public init(devices: [String: [String: UInt64]]) {
        self.devices = devices
    }

    public init(from decoder: any Decoder) throws {
        devices = try decoder.singleValueContainer().decode([String: [String: UInt64]].self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(devices)
    }
}
