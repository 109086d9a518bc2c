import Testing
@testable import ControlCore

@Suite("Reconciliation planner")
struct ReconciliationTests {
    struct Step: Sendable, CustomTestStringConvertible {
        let desired: DesiredVMState
        let observed: ObservedVMState?
        let action: ReconcileAction?
        var testDescription: String { "\(desired) vs \(observed.map(\.rawValue) ?? "absent")" }
    }

    static let steps: [Step] = [
        Step(desired: .running, observed: nil, action: .createAndStart(vm: "v")),
        Step(desired: .running, observed: .created, action: .start(vm: "v")),
        Step(desired: .running, observed: .stopped, action: .start(vm: "v")),
        Step(desired: .running, observed: .failed, action: .start(vm: "v")),
        Step(desired: .running, observed: .paused, action: .resume(vm: "v")),
        Step(desired: .running, observed: .running, action: nil),
        Step(desired: .paused, observed: nil, action: .createAndStart(vm: "v")),
        Step(desired: .paused, observed: .running, action: .pause(vm: "v")),
        Step(desired: .paused, observed: .paused, action: nil),
        Step(desired: .paused, observed: .stopped, action: .start(vm: "v")),
        Step(desired: .stopped, observed: .running, action: .stop(vm: "v")),
        Step(desired: .stopped, observed: .paused, action: .stop(vm: "v")),
        Step(desired: .stopped, observed: .stopped, action: nil),
        Step(desired: .stopped, observed: .created, action: nil),
        Step(desired: .stopped, observed: nil, action: nil),
        Step(desired: .deleted, observed: .running, action: .delete(vm: "v")),
        Step(desired: .deleted, observed: .stopped, action: .delete(vm: "v")),
        Step(desired: .deleted, observed: nil, action: .forget(vm: "v")),
    ]

    @Test(arguments: steps)
    func step(_ s: Step) {
        #expect(ReconciliationPlanner.step("v", desired: s.desired, observed: s.observed) == s.action)
    }

    @Test func planCoversEveryVMAndReportsOrphans() {
        let plan = ReconciliationPlanner.plan(
            desired: [DesiredVM(id: "b", state: .running), DesiredVM(id: "a", state: .stopped), DesiredVM(id: "c", state: .deleted)],
            reported: [ReportedVM(id: "a", state: .running), ReportedVM(id: "z", state: .running)])
        #expect(plan == [
            .record(vm: "a", state: .running), .stop(vm: "a"),
            .createAndStart(vm: "b"),
            .forget(vm: "c"),
            .orphan(vm: "z", state: .running),
        ])
    }

    @Test func convergedNodeNeedsOnlyRecords() {
        let plan = ReconciliationPlanner.plan(desired: [DesiredVM(id: "a", state: .running)],
                                              reported: [ReportedVM(id: "a", state: .running)])
        #expect(plan == [.record(vm: "a", state: .running)])
    }
}
