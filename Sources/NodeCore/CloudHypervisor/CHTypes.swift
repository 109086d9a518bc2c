/// A VM's state as cloud-hypervisor reports it in `vm.info`.
public enum CHVMState: String, Sendable, Codable, Equatable {
    case created = "Created"
    case running = "Running"
    case shutdown = "Shutdown"
    case paused = "Paused"
    case breakPoint = "BreakPoint"
}

/// The answer to `vmm.ping`.
public struct CHVmmPing: Sendable, Equatable, Decodable {
    public var version: String
    public var buildVersion: String?
    public var pid: Int64?
    public var features: [String]?

    enum CodingKeys: String, CodingKey {
        case version, pid, features
        case buildVersion = "build_version"
    }
}

/// The answer to `vm.info`: the parts the node acts on, plus the whole body (its `config` is a
/// `VmConfig`, decoded by whoever needs it).
public struct CHVMInfo: Sendable, Equatable {
    public var state: CHVMState
    public var memoryActualSize: Int64?
    /// The raw JSON answer.
    public var body: [UInt8]
}

/// A device cloud-hypervisor hot-plugged (`vm.add-*` answering 200).
public struct CHDeviceInfo: Sendable, Equatable, Decodable {
    public var id: String
    public var bdf: String
}

/// What `vm.resize` should change; absent fields stay as they are.
public struct CHResize: Sendable, Equatable, Encodable {
    public var desiredVcpus: Int?
    public var desiredRam: Int64?
    public var desiredBalloon: Int64?

    public init(desiredVcpus: Int? = nil, desiredRam: Int64? = nil, desiredBalloon: Int64? = nil) {
        self.desiredVcpus = desiredVcpus
        self.desiredRam = desiredRam
        self.desiredBalloon = desiredBalloon
    }

    enum CodingKeys: String, CodingKey {
        case desiredVcpus = "desired_vcpus"
        case desiredRam = "desired_ram"
        case desiredBalloon = "desired_balloon"
    }
}

/// A raw HTTP answer from the API socket.
public struct CHResponse: Sendable, Equatable {
    public var status: Int
    public var body: [UInt8]

    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }
}
