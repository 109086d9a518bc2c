public import VMModel

/// One problem with a request, with the field path it concerns (empty: the request as a whole).
public struct FieldProblem: Error, Sendable, Hashable, Codable {
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
}

/// Everything the control daemon refuses or fails with. ``APIError/from(_:)`` is the one place
/// these become HTTP statuses.
public enum ControlError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The body is not what the route takes (bad JSON, wrong type, unknown key).
    case malformed(FieldProblem)
    /// Well-formed, but values are wrong; every problem, each with its field.
    case invalid([FieldProblem])
    /// No such object.
    case notFound(kind: String, key: String)
    /// The object exists already (a unique name).
    case alreadyExists(kind: String, name: String, field: String)
    /// The request conflicts with the object's state.
    case conflict(message: String, field: String?)
    /// An idempotency key was reused for a different request.
    case idempotencyKeyReused(key: String)
    /// No node can take the VM.
    case noPlacement(PlacementFailure)
    /// The node that must do this is not connected.
    case nodeUnavailable(node: String)
    /// A node answered with an error.
    case nodeFailed(NodeCallError)
    /// Missing or wrong bearer token.
    case unauthorized
    /// The body exceeds the limit.
    case bodyTooLarge(limit: Int)

    /// A specification's validation problems, their paths under `prefix` (`spec.`).
    public static func spec(_ problems: [SpecProblem], prefix: String) -> ControlError {
        .invalid(problems.map { FieldProblem(field: prefix + $0.field, reason: $0.reason) })
    }

    /// A specification that could not be decoded, its path under `prefix`.
    public static func spec(_ error: SpecDecodingError, prefix: String) -> ControlError {
        let field = error.field.isEmpty ? String(prefix.dropLast()) : prefix + error.field
        return .malformed(FieldProblem(field: field, reason: error.reason))
    }

    public var description: String {
        switch self {
        case .malformed(let problem): problem.field.isEmpty ? problem.reason : "\(problem.field): \(problem.reason)"
        case .invalid(let problems):
            problems.map { $0.field.isEmpty ? $0.reason : "\($0.field): \($0.reason)" }.joined(separator: "; ")
        case .notFound(let kind, let key): "\(kind) \"\(key)\" does not exist"
        case .alreadyExists(let kind, let name, _): "\(kind) \"\(name)\" already exists"
        case .conflict(let message, _): message
        case .idempotencyKeyReused(let key): "idempotency key \"\(key)\" was already used for a different request"
        case .noPlacement(let failure): failure.description
        case .nodeUnavailable(let node): "node \(node) is not connected"
        case .nodeFailed(let error): "node error: \(error.description)"
        case .unauthorized: "missing or wrong bearer token"
        case .bodyTooLarge(let limit): "request body is larger than \(limit) bytes"
        }
    }
}
