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
        if let failure = report.failure { status.failure = failure }
        if let vmmState = report.vmmState { status.vmmState = vmmState }
        status.vcpus = UInt32(clamping: report.vcpus)
        status.memoryBytes = UInt64(clamping: report.memoryBytes)
        status.nics = UInt32(clamping: report.nics)
        status.disks = UInt32(clamping: report.disks)
        status.runtimeDirectory = report.runtimeDirectory
        status.serialLog = report.serialLog
        status.nodeState = report.state
        return status
    }

    /// The node VM report a Wire VM status carries (the inverse of ``status(_:)``).
    public static func report(_ status: WireVMStatus) -> VMReport {
        let backend = [VMMKind.cloudHypervisor, .qemu].first { backendName($0) == status.backend }?.rawValue ?? status.backend
        return VMReport(id: status.id, name: status.name, backend: backend,
                        state: status.nodeState.isEmpty ? "\(status.state)" : status.nodeState,
                        failure: status.hasFailure ? status.failure : nil,
                        pid: status.vmmPid == 0 ? nil : Int32(clamping: status.vmmPid),
                        vmmState: status.hasVmmState ? status.vmmState : nil,
                        vcpus: Int(status.vcpus), memoryBytes: Int(clamping: status.memoryBytes),
                        nics: Int(status.nics), disks: Int(status.disks),
                        runtimeDirectory: status.runtimeDirectory, serialLog: status.serialLog)
    }

    /// The node response a Wire response carries (the inverse of ``response(_:)``).
    public static func nodeResponse(_ response: WireResponse) -> NodeResponse {
        switch response.result {
        case .done: return .ok
        case .vm(let status): return .vm(report(status))
        case .vms(let list): return .vms(list.vms.map(report))
        case .console(let data):
            return .console(offset: Int64(clamping: data.offset), next: Int64(clamping: data.next), bytes: data.data)
        default:
            return .error(NodeServiceError(code: .internal, message: "unexpected answer from the node"))
        }
    }

    /// The node request a Wire request stands for; `nil` for operations the node service does not
    /// carry out itself (console tail without an offset, node info, hotplug).
    public static func request(_ request: WireRequest) throws -> NodeRequest? {
        switch request.op {
        case .create(let create): return .create(spec: try create.spec())
        case .start(let ref): return .start(name: ref.vm)
        case .stop(let stop): return .stop(name: stop.vm)
        case .pause(let ref): return .pause(name: ref.vm)
        case .resume(let ref): return .resume(name: ref.vm)
        case .reboot(let ref): return .reboot(name: ref.vm)
        case .powerButton(let ref): return .powerButton(name: ref.vm)
        case .delete(let ref): return .delete(name: ref.vm)
        case .info(let ref): return .info(name: ref.vm)
        case .list: return .list
        case .consoleTail(let tail) where tail.hasOffset:
            return .console(name: tail.vm, offset: Int64(clamping: tail.offset), follow: tail.follow)
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
        case .console(let offset, let next, let bytes):
            var data = WireConsoleData()
            data.data = bytes
            data.offset = UInt64(clamping: offset)
            data.next = UInt64(clamping: next)
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

    public var wireProblems: [WireFieldProblem] {
        problems.map { problem in
            var wire = WireFieldProblem()
            wire.field = problem.field
            wire.reason = problem.reason
            return wire
        }
    }

    /// The service error a Wire error response stands for (the inverse of the mapping above).
    public init(_ response: WireErrorResponse) {
        let code: Code
        switch response.code {
        case .invalidArgument: code = response.problems.isEmpty && response.field.isEmpty ? .invalidRequest : .invalidSpec
        case .notFound: code = .notFound
        case .alreadyExists: code = .alreadyExists
        case .failedPrecondition: code = .operationFailed
        default: code = .internal
        }
        let problems = response.problems.map { FieldProblem(field: $0.field, reason: $0.reason) }
        self.init(code: code, message: problems.isEmpty ? response.message : "invalid vm specification", problems: problems)
    }
}
