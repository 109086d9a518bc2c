import Foundation
import Testing
@testable import NodeCore
import VMModel
import Wire

@Suite("Node agent: Wire mapping and state reports")
struct NodeAgentMappingTests {
    static func status(_ id: String, _ state: WireVMState) -> WireVMStatus {
        var status = WireVMStatus()
        status.id = id
        status.name = id
        status.state = state
        return status
    }

    @Test(arguments: VMStateMachine.State.Kind.allCases)
    func everyNodeStateHasAWireState(_ kind: VMStateMachine.State.Kind) {
        let wire = NodeWireMapping.state(kind)
        #expect(wire != .unspecified)
        switch kind {
        case .running: #expect(wire == .running)
        case .paused: #expect(wire == .paused)
        case .created: #expect(wire == .created)
        case .shutdown: #expect(wire == .stopped)
        case .failed: #expect(wire == .failed)
        default: break
        }
    }

    @Test func aReportKeepsIdentityStateAndBackend() {
        let report = VMReport(id: "vm-1", name: "web", backend: VMMKind.cloudHypervisor.rawValue, state: "Running",
                              failure: nil, pid: 42, vmmState: nil, vcpus: 2, memoryBytes: 1 << 28, nics: 0, disks: 0,
                              runtimeDirectory: "/run/qarax/vm-1", serialLog: "/run/qarax/vm-1/serial.log")
        let status = NodeWireMapping.status(report)
        #expect(status.id == "vm-1" && status.name == "web")
        #expect(status.state == .running)
        #expect(status.vmmPid == 42)
        #expect(status.backend == "cloud-hypervisor")
    }

    @Test func requestsMapToTheNodeServiceAndHotplugIsLeftToTheHandler() throws {
        var request = WireRequest()
        var ref = WireVMRef()
        ref.vm = "web"
        request.op = .pause(ref)
        #expect(try NodeWireMapping.request(request) == .pause(name: "web"))
        let spec = VMSpec(name: "web", id: "vm-1", cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(64)),
                          payload: PayloadSpec(kernel: "/k"))
        request.op = .create(try WireCreateVM(spec: spec))
        #expect(try NodeWireMapping.request(request) == .create(spec: spec))
        request.op = .addNic(WireAddNIC())
        #expect(try NodeWireMapping.request(request) == nil)
    }

    @Test func nodeErrorsKeepTheirCodeAndField() {
        let error = NodeServiceError(code: .invalidSpec, message: "invalid vm specification",
                                     problems: [FieldProblem(field: "memory.size", reason: "is zero")])
        let wire = WireErrorMapping.response(for: error)
        #expect(wire.code == .invalidArgument)
        #expect(wire.field == "memory.size")
        #expect(wire.message == "memory.size: is zero")
        #expect(WireErrorMapping.response(for: NodeServiceError(code: .notFound, message: "no vm named 'x'")).code == .notFound)
        #expect(WireErrorMapping.response(for: NodeServiceError(code: .illegalTransition, message: "x")).code == .failedPrecondition)
    }

    @Test func stateChangesExitsAndVanishedVMsAreReported() {
        var reporter = VMStateReporter()
        reporter.remember([Self.status("a", .running), Self.status("b", .running), Self.status("c", .stopping)])
        #expect(reporter.changes(to: [Self.status("a", .running), Self.status("b", .running), Self.status("c", .stopping)]).isEmpty)

        let events = reporter.changes(to: [Self.status("a", .stopped), Self.status("c", .stopped)])
        var changed: [String: WireVMState] = [:]
        var exits: [String: WireVMExited.Reason] = [:]
        for event in events {
            switch event {
            case .stateChanged(let change): changed[change.vmID] = change.to
            case .exited(let exit): exits[exit.vmID] = exit.reason
            default: Issue.record("unexpected \(event)")
            }
        }
        #expect(changed == ["a": .stopped, "b": .stopped, "c": .stopped])
        #expect(exits == ["a": .shutdown, "c": .stopped])

        let failed = reporter.changes(to: [Self.status("a", .running), Self.status("d", .created)])
        #expect(failed.count == 2)
        let crash = reporter.changes(to: [Self.status("a", .failed), Self.status("d", .created)])
        #expect(crash.contains { if case .exited(let e) = $0 { e.vmID == "a" && e.reason == .crashed } else { false } })
    }
}
