import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import VMModel

/// The JSON error body of every failed request: `{code, message, field}`, plus every problem when
/// there are several (a specification's validation problems, one entry each).
public struct APIError: Codable, Sendable, Hashable {
    public struct Detail: Codable, Sendable, Hashable {
        public var code: String
        public var message: String
        public var field: String?
    }

    public var status: Int
    public var code: String
    public var message: String
    public var field: String?
    public var errors: [Detail]?

    enum CodingKeys: String, CodingKey { case code, message, field, errors }

    public init(status: Int, code: String, message: String, field: String? = nil, errors: [Detail]? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.errors = errors
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        status = 0
        code = try c.decode(String.self, forKey: .code)
        message = try c.decode(String.self, forKey: .message)
        field = try c.decodeIfPresent(String.self, forKey: .field)
        errors = try c.decodeIfPresent([Detail].self, forKey: .errors)
    }

    /// The one mapping from what the control daemon throws to an HTTP status and error body.
    public static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as ControlError:
            switch error {
            case .malformed(let p): return APIError(status: 400, code: "malformed", message: error.description, field: p.field)
            case .invalid(let problems):
                let first = problems.first
                return APIError(status: 422, code: "invalid", message: error.description, field: first?.field,
                                errors: problems.count > 1
                                    ? problems.map { Detail(code: "invalid", message: $0.reason, field: $0.field) } : nil)
            case .notFound: return APIError(status: 404, code: "not_found", message: error.description)
            case .alreadyExists(_, _, let field):
                return APIError(status: 409, code: "already_exists", message: error.description, field: field)
            case .conflict(_, let field): return APIError(status: 409, code: "conflict", message: error.description, field: field)
            case .idempotencyKeyReused:
                return APIError(status: 409, code: "idempotency_key_reused", message: error.description, field: "Idempotency-Key")
            case .noPlacement(let failure):
                return APIError(status: 409, code: "no_placement", message: error.description, field: nil,
                                errors: failure.byNode.map { node in
                                    Detail(code: "node_rejected", message: "\(node.node): \(node.reasons.map(\.description).joined(separator: "; "))",
                                           field: nil)
                                })
            case .nodeUnavailable: return APIError(status: 503, code: "node_unavailable", message: error.description)
            case .nodeFailed(let failure): return APIError(status: 502, code: "node_error", message: failure.description)
            case .unauthorized: return APIError(status: 401, code: "unauthorized", message: error.description)
            case .bodyTooLarge: return APIError(status: 413, code: "body_too_large", message: error.description)
            }
        case let error as NodeCallError:
            return APIError(status: 502, code: "node_error", message: error.description)
        case let error as SpecDecodingError:
            return APIError(status: 400, code: "malformed", message: error.description, field: error.field)
        case let error as HTTPError:
            let code = switch error.status.code {
            case 404: "not_found"
            case 405: "method_not_allowed"
            case 413: "body_too_large"
            case 400..<500: "bad_request"
            default: "internal"
            }
            return APIError(status: error.status.code, code: code, message: error.body ?? error.status.reasonPhrase)
        case let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT:
            return APIError(status: 409, code: "conflict", message: "the inventory refused the change: \(error.message ?? "constraint")")
        default:
            return APIError(status: 500, code: "internal", message: String(describing: error))
        }
    }
}
