import Foundation
import Synchronization
import VMModel
import Wire

/// TEST DOUBLE of a node's VM layer behind the REAL Wire protocol: it dials the control daemon's
/// node port with `WireDialer` + `WireReconnector` (TLS or plaintext), says Hello with an
/// inventory, reports its VMs after every connect and answers VM requests from an in-memory table.
/// No VMM is involved; the Wire link is what is under test.
final class WireTestNode: WireRequestHandler {
    let name: String
    private let state: Mutex<(vms: [String: WireVMState], requests: [String], connections: Int)>

    init(name: String, vms: [String: WireVMState] = [:]) {
        self.name = name
        state = Mutex((vms, [], 0))
    }

    var vms: [String: WireVMState] { state.withLock { $0.vms } }
    /// Operation names received, in order (`create vm-…`, `start vm-…`).
    var requests: [String] { state.withLock { $0.requests } }
    var connections: Int { state.withLock { $0.connections } }

    static func inventory() -> WireNodeInventory {
        var inventory = WireNodeInventory()
        inventory.hostname = "test-host"
        inventory.cpus = 8
        inventory.memoryBytes = 16 << 30
        inventory.kvm = true
        var backend = WireVMMBackend()
        backend.name = "cloud-hypervisor"
        backend.version = "48.0"
        inventory.backends = [backend]
        inventory.nodeVersion = "0.1.0"
        return inventory
    }

    /// Keeps dialling `endpoint` until the task is cancelled.
    func run(endpoint: WireEndpoint, security: WireSecurity) async {
        let local = WireLocalIdentity(role: .node, name: name, node: Self.inventory())
        let dialer = WireDialer(endpoint: endpoint, security: security, local: local, expectedPeerRoles: [.control],
                                warn: { _ in })
        let reconnector = WireReconnector(backoff: WireBackoff(initial: .milliseconds(20), maximum: .milliseconds(200))) {
            try await dialer.connect()
        }
        await reconnector.run { connection in
            self.state.withLock { $0.connections += 1 }
            var report = WireVMInventoryReport()
            report.vms = self.vms.sorted { $0.key < $1.key }.map { Self.status($0.key, $0.value) }
            var event = WireEvent()
            event.kind = .inventory(report)
            guard (try? await connection.push(event)) != nil else { return }
            await connection.serve(self)
        }
    }

    static func status(_ id: String, _ state: WireVMState) -> WireVMStatus {
        var status = WireVMStatus()
        status.id = id
        status.name = id
        status.state = state
        return status
    }

    func handle(_ request: WireRequest, from peer: WirePeer) async throws -> WireResponse {
        try state.withLock { s in
            var response = WireResponse()
            func set(_ vm: String, _ to: WireVMState, _ operation: String) throws {
                s.requests.append("\(operation) \(vm)")
                guard s.vms[vm] != nil else {
                    throw WireError.remote(WireErrorMapping.make(.notFound, "no VM \(vm)"))
                }
                s.vms[vm] = to
                response.result = .vm(Self.status(vm, to))
            }
            switch request.op {
            case .create(let create):
                let spec = try create.spec()
                let id = spec.id ?? spec.name
                s.requests.append("create \(id)")
                s.vms[id] = create.start ? .running : .created
                response.result = .vm(Self.status(id, s.vms[id] ?? .created))
            case .start(let ref): try set(ref.vm, .running, "start")
            case .stop(let stop): try set(stop.vm, .stopped, "stop")
            case .pause(let ref): try set(ref.vm, .paused, "pause")
            case .resume(let ref): try set(ref.vm, .running, "resume")
            case .reboot(let ref): try set(ref.vm, .running, "reboot")
            case .delete(let ref):
                s.requests.append("delete \(ref.vm)")
                s.vms[ref.vm] = nil
                response.result = .done(WireEmpty())
            case .list:
                var list = WireVMList()
                list.vms = s.vms.map { Self.status($0.key, $0.value) }
                response.result = .vms(list)
            default:
                throw WireUnsupportedOperation(operation: "\(String(describing: request.op))")
            }
            return response
        }
    }
}
