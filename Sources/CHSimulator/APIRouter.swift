/// Routes one API request: method check, body validation (400 for bodies that fail it), then the
/// VMM's state machine. Faults and process-level effects stay in the server.
public struct APIRouter: Sendable {
    public var vmm: SimulatedVMM
    public let validator: BodyValidator

    public init(vmm: SimulatedVMM = SimulatedVMM(), validator: @escaping BodyValidator = DefaultBodyValidator.validate) {
        self.vmm = vmm
        self.validator = validator
    }

    /// `isGet` is the request's method (GET or PUT); `call` the path after `/api/v1/`.
    public mutating func route(isGet: Bool, call: String, body: [UInt8], descriptors: [Int32]) -> SimulatedVMM.Reply {
        guard let expectsGet = SimulatedVMM.callsAnswering(get: call) else {
            return SimulatedVMM.Reply(status: 404, body: [])
        }
        guard isGet == expectsGet else { return SimulatedVMM.Reply(status: 405, body: []) }
        if SimulatedVMM.callsWithBody.contains(call) {
            let problems = validator(SimulatedVMM.documentPath(of: call), body)
            if !problems.isEmpty {
                return SimulatedVMM.Reply(status: 400, body: Self.chain(["Failed to deserialize JSON", problems.joined(separator: "; ")]))
            }
        }
        return vmm.handle(call: call, body: body, descriptors: descriptors)
    }

    /// CH's error body: a JSON array of strings.
    public static func chain(_ items: [String]) -> [UInt8] {
        SimJSON.array(items.map(SimJSON.string)).encoded()
    }
}
