public import LinuxSys

/// A failed call to cloud-hypervisor's REST API.
///
/// Keeps what the VMM said: its HTTP status and its error chain (CH answers errors with a JSON
/// array of strings, outermost first), so the operator sees the real cause.
public enum CHError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The VMM answered with a status other than the call's success status. `chain` is its error
    /// chain (or the raw body as one element when it is not a JSON array of strings).
    case api(status: Int, chain: [String], call: String)
    /// No complete answer within the call's deadline (a hung VMM).
    case timeout(call: String)
    /// The socket failed in a way that does not mean the VMM is gone.
    case transport(call: String, SystemError)
    /// The VMM is gone: nobody listens on the socket, it closed the connection before a complete
    /// answer, or it answered "receiving on a closed channel" (a request racing a guest power-off,
    /// which ends the VMM process).
    case vmmGone(call: String, detail: String)
    /// The answer exceeded the client's response-size cap; the connection was dropped.
    case responseTooLarge(call: String, limit: Int)
    /// The answer was not valid HTTP/1.1, or its body not the JSON the call expects.
    case malformedResponse(call: String, reason: String)
    /// The call was cancelled by its task.
    case cancelled(call: String)
    /// The request body could not be encoded; nothing was sent.
    case invalidRequest(call: String, reason: String)

    /// The call the error belongs to, e.g. `vm.boot`.
    public var call: String {
        switch self {
        case .api(_, _, let call), .timeout(let call), .transport(let call, _), .vmmGone(let call, _),
             .responseTooLarge(let call, _), .malformedResponse(let call, _), .cancelled(let call),
             .invalidRequest(let call, _):
            call
        }
    }

    public var description: String {
        switch self {
        case .api(let status, let chain, let call):
            "cloud-hypervisor \(call) failed with HTTP \(status): \(chain.joined(separator: ": "))"
        case .timeout(let call):
            "cloud-hypervisor \(call): no answer before the deadline"
        case .transport(let call, let error):
            "cloud-hypervisor \(call): \(error)"
        case .vmmGone(let call, let detail):
            "cloud-hypervisor \(call): the VMM is gone (\(detail))"
        case .responseTooLarge(let call, let limit):
            "cloud-hypervisor \(call): answer larger than \(limit) bytes"
        case .malformedResponse(let call, let reason):
            "cloud-hypervisor \(call): malformed answer: \(reason)"
        case .cancelled(let call):
            "cloud-hypervisor \(call): cancelled"
        case .invalidRequest(let call, let reason):
            "cloud-hypervisor \(call): request not sent: \(reason)"
        }
    }
}
