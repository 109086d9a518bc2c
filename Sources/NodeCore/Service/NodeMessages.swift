public import Foundation
public import VMModel

/// A request to the node daemon, independent of the transport that carries it.
public enum NodeRequest: Codable, Hashable, Sendable {
    /// Creates a VM in `Created` (validated; nothing prepared on the host yet).
    case create(spec: VMSpec)
    case start(name: String)
    /// Stops along the teardown ladder; the VM stays known (`start` boots it again).
    case stop(name: String)
    case pause(name: String)
    case resume(name: String)
    case reboot(name: String)
    case powerButton(name: String)
    /// Stops if needed, releases everything and forgets the VM.
    case delete(name: String)
    case info(name: String)
    case list
    /// The serial console log from byte `offset` on, at most ``NodeService/consoleChunkLimit``
    /// bytes per answer. With `follow`, an answer with no bytes yet waits (bounded by
    /// ``NodeService/followWait``) for the log to grow: clients follow by asking again from `next`.
    case console(name: String, offset: Int64, follow: Bool)
}

/// What the node reports about one VM.
public struct VMReport: Codable, Hashable, Sendable {
    public var id: String
    public var name: String
    /// `cloud_hypervisor` or `qemu`.
    public var backend: String
    /// `Created`, `Running`, `Paused`, `Shutdown`, `Failed`…
    public var state: String
    /// Why the VM failed, in `Failing` and `Failed`.
    public var failure: String?
    /// The VMM process, while one runs.
    public var pid: Int32?
    /// The VMM's own state name (QEMU's `running`, cloud-hypervisor's `Running`), when it answered.
    public var vmmState: String?
    public var vcpus: Int
    public var memoryBytes: Int
    public var nics: Int
    public var disks: Int
    public var runtimeDirectory: String
    public var serialLog: String

    public init(id: String, name: String, backend: String, state: String, failure: String?, pid: Int32?,
                vmmState: String?, vcpus: Int, memoryBytes: Int, nics: Int, disks: Int,
                runtimeDirectory: String, serialLog: String) {
        self.id = id
        self.name = name
        self.backend = backend
        self.state = state
        self.failure = failure
        self.pid = pid
        self.vmmState = vmmState
        self.vcpus = vcpus
        self.memoryBytes = memoryBytes
        self.nics = nics
        self.disks = disks
        self.runtimeDirectory = runtimeDirectory
        self.serialLog = serialLog
    }

    enum CodingKeys: String, CodingKey {
        case id, name, backend, state, failure, pid, vcpus, nics, disks
        case vmmState = "vmm_state"
        case memoryBytes = "memory_bytes"
        case runtimeDirectory = "runtime_directory"
        case serialLog = "serial_log"
    }
}

/// A refused or failed request: a stable code, the message, and every specification problem with
/// its field path.
public struct NodeServiceError: Error, Codable, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Codable, Hashable, Sendable {
        case invalidSpec = "invalid_spec"
        case invalidRequest = "invalid_request"
        case alreadyExists = "already_exists"
        case notFound = "not_found"
        /// The VM's state forbids the command; nothing was sent to the VMM.
        case illegalTransition = "illegal_transition"
        /// The VMM refused or failed, or the VM ended in another state.
        case operationFailed = "operation_failed"
        case `internal`
    }

    public var code: Code
    public var message: String
    public var problems: [FieldProblem]

    public init(code: Code, message: String, problems: [FieldProblem] = []) {
        self.code = code
        self.message = message
        self.problems = problems
    }

    public var description: String {
        problems.isEmpty ? message : problems.map(\.description).joined(separator: "\n")
    }

    /// The one mapping of the node's errors to service errors.
    public init(_ error: NodeError) {
        switch error {
        case .invalidSpec(let problems):
            self.init(code: .invalidSpec, message: "invalid vm specification", problems: problems.map(FieldProblem.init))
        case .alreadyExists: self.init(code: .alreadyExists, message: error.description)
        case .notFound: self.init(code: .notFound, message: error.description)
        case .operation(.illegal): self.init(code: .illegalTransition, message: error.description)
        case .operation: self.init(code: .operationFailed, message: error.description)
        case .setup: self.init(code: .internal, message: error.description)
        }
    }
}

/// One problem of a specification: the field path and the reason.
public struct FieldProblem: Codable, Hashable, Sendable, CustomStringConvertible {
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public init(_ problem: SpecProblem) { self.init(field: problem.field, reason: problem.reason) }

    public var description: String { field.isEmpty ? reason : "\(field): \(reason)" }
}

/// The node's answer to one ``NodeRequest``.
public enum NodeResponse: Codable, Hashable, Sendable {
    case ok
    case vm(VMReport)
    case vms([VMReport])
    /// Console bytes starting at `offset`; `next` is the offset to ask for next.
    case console(offset: Int64, next: Int64, bytes: Data)
    case error(NodeServiceError)
}
