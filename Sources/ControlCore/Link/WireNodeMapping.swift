import Foundation
import VMModel
import Wire

/// The one translation between the control daemon's node vocabulary and Wire messages.
enum WireNodeMapping {
    static func inventory(_ wire: WireNodeInventory) -> NodeInventory {
        let systemWide = wire.hugepages.filter { $0.numaNode < 0 }
        let pools = systemWide.isEmpty ? wire.hugepages : systemWide
        var bySize: [UInt64: (total: UInt64, free: UInt64)] = [:]
        for pool in pools {
            let current = bySize[pool.pageSizeBytes] ?? (0, 0)
            bySize[pool.pageSizeBytes] = (current.total + pool.total, current.free + pool.free)
        }
        let hugepages = bySize.keys.sorted().map { size in
            NodeInventory.HugepagePool(pageSize: Int(clamping: size), total: Int(clamping: bySize[size]?.total ?? 0),
                                       free: Int(clamping: bySize[size]?.free ?? 0))
        }
        let vmms = wire.backends.compactMap { backend -> NodeInventory.VMM? in
            guard let kind = Self.backend(backend.name) else { return nil }
            return NodeInventory.VMM(backend: kind, version: backend.version)
        }
        return NodeInventory(hostname: wire.hostname, cpus: Int(wire.cpus), memoryBytes: Int(clamping: wire.memoryBytes),
                             hugepages: hugepages, kvm: wire.kvm, vmms: vmms, bridges: wire.bridges.map(\.name),
                             macvtapParents: wire.macvtapParents, nodeVersion: wire.nodeVersion)
    }

    static func backend(_ name: String) -> VMMBackend? {
        switch name {
        case "cloud-hypervisor", "cloud_hypervisor": .cloudHypervisor
        case "qemu": .qemu
        default: nil
        }
    }

    static func state(_ wire: WireVMState) -> ObservedVMState {
        switch wire {
        case .created: .created
        case .starting, .running: .running
        case .paused: .paused
        case .stopping, .stopped: .stopped
        case .failed: .failed
        case .unspecified, .UNRECOGNIZED: .unknown
        }
    }

    static func reported(_ status: WireVMStatus) -> ReportedVM {
        ReportedVM(id: status.id.isEmpty ? status.name : status.id, state: state(status.state))
    }

    static func request(_ request: NodeRequest) throws -> WireRequest {
        var wire = WireRequest()
        func ref(_ vm: String) -> WireVMRef {
            var ref = WireVMRef()
            ref.vm = vm
            return ref
        }
        switch request {
        case .createVM(let id, let spec, _):
            var spec = spec
            spec.id = id
            wire.op = .create(try WireCreateVM(spec: spec))
        case .startVM(let id): wire.op = .start(ref(id))
        case .stopVM(let id):
            var stop = WireStopVM()
            stop.vm = id
            wire.op = .stop(stop)
        case .pauseVM(let id): wire.op = .pause(ref(id))
        case .resumeVM(let id): wire.op = .resume(ref(id))
        case .rebootVM(let id): wire.op = .reboot(ref(id))
        case .deleteVM(let id): wire.op = .delete(ref(id))
        case .addNIC(let vm, let nic): wire.op = .addNic(try WireAddNIC(vm: vm, nic: nic))
        case .addDisk(let vm, let disk): wire.op = .addDisk(try WireAddDisk(vm: vm, disk: disk))
        case .consoleTail(let vm, let maxBytes):
            var tail = WireConsoleTail()
            tail.vm = vm
            tail.maxBytes = UInt32(clamping: maxBytes)
            wire.op = .consoleTail(tail)
        case .listVMs: wire.op = .list(WireListVMs())
        }
        return wire
    }

    static func reply(_ response: WireResponse, to request: NodeRequest) throws(NodeCallError) -> NodeReply {
        switch response.result {
        case .vm(let status): return .done(state(status.state))
        case .vms(let list): return .vms(list.vms.map(reported))
        case .console(let data): return .console(Array(data.data))
        case .device, .done: return .done(nil)
        case .node, nil:
            throw NodeCallError(code: "protocol", message: "the node answered \(request) with an unexpected result")
        }
    }

    static func callError(_ error: WireError) -> NodeCallError {
        switch error {
        case .remote(let response):
            let code = switch response.code {
            case .notFound: "not_found"
            case .alreadyExists: "already_exists"
            case .invalidArgument: "invalid_argument"
            case .failedPrecondition: "failed_precondition"
            case .resourceExhausted: "resource_exhausted"
            case .unavailable: "unavailable"
            case .unimplemented: "unimplemented"
            case .permissionDenied: "permission_denied"
            case .timeout: "timeout"
            case .`protocol`: "protocol"
            case .system: "system"
            case .`internal`, .unspecified, .UNRECOGNIZED: "internal"
            }
            let field = response.field.isEmpty ? "" : "\(response.field): "
            return NodeCallError(code: code, message: field + response.message)
        case .timedOut: return NodeCallError(code: "timeout", message: error.description)
        default: return NodeCallError(code: "unavailable", message: error.description)
        }
    }

    /// Events that only say "this node is alive" (resource reports).
    static func isLivenessOnly(_ event: WireEvent) -> Bool {
        if case .resources? = event.kind { return true }
        return false
    }

    /// What one Wire event means to the control logic.
    static func events(_ event: WireEvent) -> [NodeEvent] {
        switch event.kind {
        case .inventory(let report):
            return report.vms.map { .vmState(vm: reported($0).id, state: state($0.state)) }
        case .stateChanged(let change):
            return [.vmState(vm: change.vmID, state: state(change.to))]
        case .exited(let exit):
            let observed: ObservedVMState = switch exit.reason {
            case .shutdown, .stopped: .stopped
            default: .failed
            }
            return [.vmState(vm: exit.vmID, state: observed)]
        case .bootTimings(let timings):
            return [.bootTime(vm: timings.vmID, milliseconds: Double(timings.bootUs) / 1000)]
        case .resources, nil:
            return [.heartbeat]
        }
    }
}
