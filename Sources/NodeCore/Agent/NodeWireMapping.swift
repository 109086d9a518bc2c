import Foundation
import VMModel
public import Wire

/// The one translation between the node's service vocabulary and Wire messages.
public enum NodeWireMapping {
    /// The Wire state of a node VM state.
    public static func state(_ kind: VMStateMachine.State.Kind) -> WireVMState {
        switch kind {
        case .created: .created
        case .booting: .starting
        case .running, .pausing, .rebooting: .running
        case .paused, .resuming: .paused
        case .shuttingDown, .deleting: .stopping
        case .shutdown, .deleted: .stopped
        case .failing, .failed: .failed
        }
    }

    /// The Wire name of a backend (`cloud-hypervisor`, `qemu`).
    public static func backendName(_ kind: VMMKind) -> String {
        switch kind {
        case .cloudHypervisor: "cloud-hypervisor"
        case .qemu: "qemu"
        }
    }

    /// A node VM report as a Wire VM status.
    public static func status(_ report: VMReport) -> WireVMStatus {
        var status = WireVMStatus()
        status.id = report.id
        status.name = report.name
        status.state = VMStateMachine.State.Kind(rawValue: report.state).map(state) ?? .unspecified
        status.vmmPid = UInt32(clamping: report.pid ?? 0)
        status.backend = VMMKind(rawValue: report.backend).map(backendName) ?? report.backend
        return status
    }

    /// The node request a Wire request stands for; `nil` for operations the node service does not
    /// carry out itself (console tail, node info, hotplug).
    public static func request(_ request: WireRequest) throws -> NodeRequest? {
        switch request.op {
        case .create(let create): return .create(spec: try create.spec())
        case .start(let ref): return .start(name: ref.vm)
        case .stop(let stop): return .stop(name: stop.vm)
        case .pause(let ref): return .pause(name: ref.vm)
        case .resume(let ref): return .resume(name: ref.vm)
        case .reboot(let ref): return .reboot(name: ref.vm)
        case .delete(let ref): return .delete(name: ref.vm)
        case .info(let ref): return .info(name: ref.vm)
        case .list: return .list
        case .consoleTail, .addNic, .removeNic, .addDisk, .removeDisk, .nodeInfo, nil: return nil
        }
    }

    /// The Wire response for a node response; a node error is thrown (mapped by `WireErrorMapping`).
    public static func response(_ response: NodeResponse) throws(NodeServiceError) -> WireResponse {
        var wire = WireResponse()
        switch response {
        case .ok: wire.result = .done(WireEmpty())
        case .vm(let report): wire.result = .vm(status(report))
        case .vms(let reports):
            var list = WireVMList()
            list.vms = reports.map(status)
            wire.result = .vms(list)
        case .console(_, _, let bytes):
            var data = WireConsoleData()
            data.data = bytes
            wire.result = .console(data)
        case .error(let error): throw error
        }
        return wire
    }
}

extension NodeServiceError: WireMappableError {
    public var wireCode: WireErrorCode {
        switch code {
        case .invalidSpec, .invalidRequest: .invalidArgument
        case .alreadyExists: .alreadyExists
        case .notFound: .notFound
        case .illegalTransition, .operationFailed: .failedPrecondition
        case .internal: .internal
        }
    }

    public var wireMessage: String { description }
    public var wireField: String { problems.first?.field ?? "" }
}
