/// A VM as the control daemon wants it on one node.
public struct DesiredVM: Sendable, Hashable {
    public var id: String
    public var state: DesiredVMState

    public init(id: String, state: DesiredVMState) {
        self.id = id
        self.state = state
    }
}

/// A VM as its node reports it.
public struct ReportedVM: Sendable, Hashable, Codable {
    public var id: String
    public var state: ObservedVMState

    public init(id: String, state: ObservedVMState) {
        self.id = id
        self.state = state
    }
}

/// One step that brings a node closer to the desired state.
public enum ReconcileAction: Sendable, Hashable {
    /// Define the VM on the node and boot it.
    case createAndStart(vm: String)
    case start(vm: String)
    case stop(vm: String)
    case pause(vm: String)
    case resume(vm: String)
    /// Stop (if needed) and remove the VM from the node.
    case delete(vm: String)
    /// The node confirms a deleted VM is gone: drop its row.
    case forget(vm: String)
    /// Record what the node reported.
    case record(vm: String, state: ObservedVMState)
    /// The node runs a VM the control daemon does not know: report it, touch nothing.
    case orphan(vm: String, state: ObservedVMState)
}

/// Compares desired and reported VMs of one node and lists the actions that converge them.
///
/// Pure: the owner performs the actions. Run on every (re)connect with the node's full report and
/// after every state change.
public enum ReconciliationPlanner {
    public static func plan(desired: [DesiredVM], reported: [ReportedVM]) -> [ReconcileAction] {
        var actions: [ReconcileAction] = []
        let reportedByID = Dictionary(reported.map { ($0.id, $0.state) }, uniquingKeysWith: { _, last in last })
        let desiredIDs = Set(desired.map(\.id))
        for vm in desired.sorted(by: { $0.id < $1.id }) {
            let observed = reportedByID[vm.id]
            if let observed { actions.append(.record(vm: vm.id, state: observed)) }
            if let step = step(vm.id, desired: vm.state, observed: observed) { actions.append(step) }
        }
        for vm in reported.sorted(by: { $0.id < $1.id }) where !desiredIDs.contains(vm.id) {
            actions.append(.orphan(vm: vm.id, state: vm.state))
        }
        return actions
    }

    /// The one step for a VM, or nil when it is where it should be (or cannot move by itself).
    public static func step(_ id: String, desired: DesiredVMState, observed: ObservedVMState?) -> ReconcileAction? {
        switch (desired, observed) {
        case (.deleted, nil): .forget(vm: id)
        case (.deleted, _?): .delete(vm: id)
        case (.running, nil): .createAndStart(vm: id)
        case (.running, .running): nil
        case (.running, .paused): .resume(vm: id)
        case (.running, _?): .start(vm: id)
        case (.paused, nil): .createAndStart(vm: id)
        case (.paused, .running): .pause(vm: id)
        case (.paused, .paused): nil
        case (.paused, _?): .start(vm: id)
        case (.stopped, .running), (.stopped, .paused): .stop(vm: id)
        case (.stopped, _): nil
        }
    }
}
