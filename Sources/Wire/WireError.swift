import VMModel

/// Errors of the connection layer, seen by callers of `WireConnection`.
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The peer answered a request with an error response.
    case remote(WireErrorResponse)
    /// No answer within the call's timeout.
    case timedOut(after: Duration)
    /// The in-flight limit was reached and the wait queue was full too.
    case overloaded(inFlightLimit: Int)
    /// The connection closed; `reason` says why when known.
    case connectionClosed(reason: String)
    /// The bytes on the connection broke the frame format.
    case framing(WireFrameError)
    /// The peer broke the protocol (a message out of place, a failed handshake).
    case protocolViolation(String)
    /// The peer's identity does not match what it claims or what this side requires.
    case identityMismatch(String)
    /// Nothing arrived from the peer for the missed-heartbeat limit.
    case peerUnresponsive(silentFor: Duration)
    /// The TLS layer refused the peer or failed (wrong CA, expired or missing certificate…).
    case tls(String)
    /// No version in common.
    case noCommonVersion(offered: [UInt32], supported: [UInt32])

    public var description: String {
        switch self {
        case .remote(let e): "peer error \(e.code): \(e.field.isEmpty ? "" : "\(e.field): ")\(e.message)"
        case .timedOut(let after): "no answer within \(after)"
        case .overloaded(let limit): "too many requests in flight (limit \(limit)) and the wait queue is full"
        case .connectionClosed(let reason): "connection closed: \(reason)"
        case .framing(let e): e.description
        case .protocolViolation(let what): "protocol violation: \(what)"
        case .identityMismatch(let what): "peer identity: \(what)"
        case .peerUnresponsive(let silent): "peer sent nothing for \(silent) (missed heartbeats)"
        case .tls(let what): "TLS: \(what)"
        case .noCommonVersion(let offered, let supported):
            "no common protocol version: peer offers \(offered), this side speaks \(supported)"
        }
    }
}

/// A domain error that knows its wire code, message and field. Modules above Wire (NodeCore,
/// ControlCore) conform their error enums to this; `WireErrorMapping.response(for:)` uses it.
public protocol WireMappableError: Error {
    var wireCode: WireErrorCode { get }
    var wireMessage: String { get }
    /// The field path the error is about (`nics[1].mtu`), or `""`.
    var wireField: String { get }
    /// The errno behind a `.system` error, or 0.
    var wireErrno: Int32 { get }
    /// Every problem of an invalid input, field by field (`[]` when not about input fields).
    var wireProblems: [WireFieldProblem] { get }
}

extension WireMappableError {
    public var wireField: String { "" }
    public var wireErrno: Int32 { 0 }
    public var wireProblems: [WireFieldProblem] { [] }
}

/// The one mapping from errors to wire error responses.
public enum WireErrorMapping {
    /// The response a request handler's `error` becomes on the wire.
    public static func response(for error: any Error) -> WireErrorResponse {
        switch error {
        case let e as any WireMappableError:
            var response = make(e.wireCode, e.wireMessage, field: e.wireField, errno: e.wireErrno)
            response.problems = e.wireProblems
            return response
        case let e as WireError:
            switch e {
            case .remote(let response): return response
            case .timedOut: return make(.timeout, e.description)
            case .overloaded: return make(.resourceExhausted, e.description)
            case .connectionClosed: return make(.unavailable, e.description)
            case .framing, .protocolViolation, .noCommonVersion: return make(.protocol, e.description)
            case .identityMismatch, .tls: return make(.permissionDenied, e.description)
            case .peerUnresponsive: return make(.unavailable, e.description)
            }
        case let e as WireFrameError:
            return make(.protocol, e.description)
        case let e as SpecProblem:
            return make(.invalidArgument, e.reason, field: e.field)
        case let e as SpecDecodingError:
            return make(.invalidArgument, e.reason, field: e.field)
        case is CancellationError:
            return make(.unavailable, "the operation was cancelled")
        default:
            return make(.internal, "\(error)")
        }
    }

    /// Builds an error response.
    public static func make(_ code: WireErrorCode, _ message: String, field: String = "",
                            errno: Int32 = 0) -> WireErrorResponse {
        var response = WireErrorResponse()
        response.code = code
        response.message = message
        response.field = field
        response.errno = errno
        return response
    }
}

/// The error `WireRequestHandler`s throw for an operation they do not implement.
public struct WireUnsupportedOperation: WireMappableError, Sendable {
    public let operation: String
    public init(operation: String) { self.operation = operation }
    public var wireCode: WireErrorCode { .unimplemented }
    public var wireMessage: String { "operation \(operation) is not supported by this peer" }
}
