import Foundation
import Synchronization
@testable import ControlCore
import VMModel

/// TEST DOUBLE of a node link: an in-process "node" that keeps VM states in memory, answers
/// requests like a node would and records them. Not a node; no VMM is involved.
final class TestNodeLink: NodeLink {
    let hello: NodeHello
    let events: AsyncStream<NodeEvent>
    private let continuation: AsyncStream<NodeEvent>.Continuation
    private let state: Mutex<(vms: [String: ObservedVMState], calls: [NodeRequest], failNext: NodeCallError?)>

    init(name: String, inventory: NodeInventory = sampleInventory(), vms: [ReportedVM] = []) {
        hello = NodeHello(name: name, address: "127.0.0.1:9", protocolVersion: 1, inventory: inventory, vms: vms)
        (events, continuation) = AsyncStream.makeStream(of: NodeEvent.self)
        state = Mutex((Dictionary(vms.map { ($0.id, $0.state) }, uniquingKeysWith: { a, _ in a }), [], nil))
    }

    var calls: [NodeRequest] { state.withLock { $0.calls } }
    var vms: [String: ObservedVMState] { state.withLock { $0.vms } }

    func push(_ event: NodeEvent) { continuation.yield(event) }
    /// The next request fails with `error`, as a node refusing it would.
    func failNext(_ error: NodeCallError) { state.withLock { $0.failNext = error } }
    func close() { continuation.finish() }

    func call(_ request: NodeRequest) async throws -> NodeReply {
        try state.withLock { s in
            s.calls.append(request)
            if let error = s.failNext {
                s.failNext = nil
                throw error
            }
            func require(_ id: String) throws {
                if s.vms[id] == nil { throw NodeCallError(code: "no_such_vm", message: "VM \(id) is not defined") }
            }
            switch request {
            case .createVM(let id, _, _): s.vms[id] = .created; return .done(.created)
            case .startVM(let id), .resumeVM(let id): try require(id); s.vms[id] = .running; return .done(.running)
            case .stopVM(let id): try require(id); s.vms[id] = .stopped; return .done(.stopped)
            case .pauseVM(let id): try require(id); s.vms[id] = .paused; return .done(.paused)
            case .rebootVM(let id): try require(id); return .done(.running)
            case .deleteVM(let id): s.vms[id] = nil; return .done(nil)
            case .addNIC(let id, _), .addDisk(let id, _): try require(id); return .done(s.vms[id])
            case .consoleTail(let id, let max): try require(id); return .console(Array("READY \(id)\n".utf8.suffix(max)))
            case .listVMs: return .vms(s.vms.map { ReportedVM(id: $0.key, state: $0.value) })
            }
        }
    }
}
