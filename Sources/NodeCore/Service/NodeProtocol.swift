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
    /// The serial console log from byte `offset` on, at most ``NodeProtocol/consoleChunkLimit``
    /// bytes per answer. With `follow`, the answer is a stream of `console` frames, each sent when
    /// the log grows, until the client closes the connection or the VM is deleted.
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

/// The interim local protocol of `qarax-node serve` on its Unix socket, until the Wire protocol
/// replaces it: each message is one frame, a 4-byte big-endian length followed by that many bytes
/// of JSON (a ``NodeRequest`` from the client, a ``NodeResponse`` from the node), at most
/// ``maxFrameBytes``. One request per connection; the node answers with one frame, or a stream of
/// frames for a followed console, then closes.
public enum NodeProtocol {
    public static let maxFrameBytes = 1 << 20
    /// The most console bytes in one answer.
    public static let consoleChunkLimit = 512 << 10

    /// The frame carrying `message`.
    public static func frame<T: Encodable>(_ message: T) throws(NodeFrameError) -> [UInt8] {
        let body: Data
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            body = try encoder.encode(message)
        } catch {
            throw .encoding("\(error)")
        }
        guard body.count <= maxFrameBytes else { throw .tooLarge(body.count) }
        let length = UInt32(body.count)
        return [UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff)] + body
    }

    /// The body length announced by a 4-byte header.
    public static func bodyLength(header: [UInt8]) throws(NodeFrameError) -> Int {
        guard header.count == 4 else { throw .truncated }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        guard length <= maxFrameBytes else { throw .tooLarge(length) }
        return length
    }

    public static func decode<T: Decodable>(_ type: T.Type, body: [UInt8]) throws(NodeFrameError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch let error as DecodingError {
            throw .decoding(SpecDecodingError(error).description)
        } catch {
            throw .decoding("\(error)")
        }
    }
}

/// Why a frame could not be read, written or understood.
public enum NodeFrameError: Error, Hashable, Sendable, CustomStringConvertible {
    case tooLarge(Int)
    case truncated
    case encoding(String)
    case decoding(String)
    case io(String)

    public var description: String {
        switch self {
        case .tooLarge(let size): "frame of \(size) bytes is above the \(NodeProtocol.maxFrameBytes)-byte limit"
        case .truncated: "the connection ended in the middle of a frame"
        case .encoding(let reason): "cannot encode the message: \(reason)"
        case .decoding(let reason): "cannot decode the message: \(reason)"
        case .io(let reason): reason
        }
    }
}
