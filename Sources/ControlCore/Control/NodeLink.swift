public import VMModel

/// A request the control daemon sends to a node.
public enum NodeRequest: Sendable, Hashable {
    /// Define the VM on the node (it is not booted).
    case createVM(id: String, spec: VMSpec, vmm: VMMBackend)
    case startVM(id: String)
    case stopVM(id: String)
    case pauseVM(id: String)
    case resumeVM(id: String)
    case rebootVM(id: String)
    /// Stop the VM if it runs and remove it from the node.
    case deleteVM(id: String)
    case addNIC(vm: String, nic: NICSpec)
    case addDisk(vm: String, disk: DiskSpec)
    /// The last `maxBytes` of the VM's serial console.
    case consoleTail(vm: String, maxBytes: Int)
    /// Every VM the node runs, with its state.
    case listVMs
}

/// A node's answer to a ``NodeRequest``.
public enum NodeReply: Sendable, Hashable {
    /// Done; the VM's state afterwards when the request concerned one.
    case done(ObservedVMState?)
    case vms([ReportedVM])
    case console([UInt8])
}

/// Something a node pushes without being asked.
public enum NodeEvent: Sendable, Hashable {
    case heartbeat
    case vmState(vm: String, state: ObservedVMState)
    case bootTime(vm: String, milliseconds: Double)
    case inventory(NodeInventory)
}

/// What a node says when it connects: who it is, what it has and every VM it runs.
public struct NodeHello: Sendable, Hashable {
    public var name: String
    public var address: String
    public var protocolVersion: Int
    public var inventory: NodeInventory
    public var vms: [ReportedVM]

    public init(name: String, address: String, protocolVersion: Int, inventory: NodeInventory, vms: [ReportedVM]) {
        self.name = name
        self.address = address
        self.protocolVersion = protocolVersion
        self.inventory = inventory
        self.vms = vms
    }
}

/// A node refused or failed a request.
public struct NodeCallError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// One connected node, whatever carries the bytes: requests answered by the node, and the events
/// it pushes. The stream ends when the connection does.
public protocol NodeLink: Sendable {
    /// The node's greeting, received before the link is handed to the registry.
    var hello: NodeHello { get }
    /// Sends `request` and waits for the node's reply.
    func call(_ request: NodeRequest) async throws -> NodeReply
    /// Events the node pushes; finishes when the link closes.
    var events: AsyncStream<NodeEvent> { get }
    /// From now on, liveness-only reports call `heard` where they arrive instead of coming
    /// through ``events`` as `.heartbeat` (links that cannot do this keep sending them there).
    func routeLiveness(to heard: @escaping @Sendable () -> Void) async
}

extension NodeLink {
    public func routeLiveness(to heard: @escaping @Sendable () -> Void) async {}
}
