import NodeCore
import Testing

/// The expectation table and its vocabulary.
enum VMStateMachineTable {
    /// One representative of every kind of input the machine takes.
    enum Probe: Hashable, Sendable, CustomTestStringConvertible {
        case command(VMStateMachine.Command)
        case launched
        case launchFailed
        case call(VMStateMachine.Call, Outcome)
        case event(VMStateMachine.Event)
        case exit(VMStateMachine.ProcessExit)

        enum Outcome: CaseIterable, Hashable, Sendable {
            case success, rejected, noAnswer, gone
        }

        static let exits: [VMStateMachine.ProcessExit] = [
            .clean, .vcpuFailure("VCPU generated error: InternalError"), .exitStatus(1), .crashed(signal: 11),
            .signaled(15), .oomKilled, .seccompKilled, .killedByNode,
        ]

        static let all: [Probe] =
            VMStateMachine.Command.allCases.map { .command($0) }
            + [.launched, .launchFailed]
            + VMStateMachine.Call.allCases.flatMap { call in Outcome.allCases.map { .call(call, $0) } }
            + VMStateMachine.Event.allCases.map { .event($0) }
            + exits.map { .exit($0) }

        var error: VMStateMachine.CallError? {
            guard case .call(_, let outcome) = self else { return nil }
            switch outcome {
            case .success: return nil
            case .rejected: return .init(.rejected(status: 500), chain: ["Error from API", "refused"])
            case .noAnswer: return .init(.noAnswer, chain: ["no answer within 5 s"])
            case .gone: return .init(.vmmGone, chain: ["receiving on a closed channel"])
            }
        }

        var observation: VMStateMachine.Observation? {
            switch self {
            case .command: nil
            case .launched: .launched
            case .launchFailed: .launchFailed("hugepages: 28 missing")
            case .call(let call, _): .callEnded(call, error.map { .failure($0) } ?? .success)
            case .event(let event): .event(event)
            case .exit(let exit): .processExited(exit)
            }
        }

        var testDescription: String {
            switch self {
            case .command(let command): "command \(command.rawValue)"
            case .launched: "launched"
            case .launchFailed: "launch failed"
            case .call(let call, let outcome): "\(call.rawValue) \(outcome)"
            case .event(let event): "event \(event.rawValue)"
            case .exit(let exit): "exit \(exit)"
            }
        }
    }

    /// An action without its payload; payloads are checked by the focused tests.
    enum Shape: Hashable, Sendable {
        case launch, call(VMStateMachine.Call), report, teardown(VMStateMachine.Teardown), release, remove
    }

    enum Expect: Hashable, Sendable {
        case refused(busy: Bool)
        case to(VMStateMachine.State.Kind, [Shape])
        case stay([Shape])

        static let illegal = Expect.refused(busy: false)
        static let busy = Expect.refused(busy: true)
        static let ignored = Expect.stay([])
    }

    /// The expected outcome of every (state, input) pair, written out per state. The completeness test
    /// fails when a state, command, call, event or exit is added and this table is not updated.
    enum Table {
        typealias Row = [Probe: Expect]

        /// A call result nothing waits for: success is ignored, failure only reported.
        static func stale(_ calls: [VMStateMachine.Call]) -> Row {
            var row: Row = [:]
            for call in calls {
                row[.call(call, .success)] = .ignored
                row[.call(call, .rejected)] = .stay([.report])
                row[.call(call, .noAnswer)] = .stay([.report])
                row[.call(call, .gone)] = .stay([.report])
            }
            return row
        }

        static func callsExcept(_ awaited: VMStateMachine.Call...) -> [VMStateMachine.Call] {
            VMStateMachine.Call.allCases.filter { !awaited.contains($0) }
        }

        static func awaited(_ call: VMStateMachine.Call, success: Expect, rejected: Expect) -> Row {
            [
                .call(call, .success): success,
                .call(call, .rejected): rejected,
                .call(call, .noAnswer): .to(.failing, [.report, .teardown(.signals)]),
                .call(call, .gone): .stay([.report]),
            ]
        }

        static func events(_ entries: [VMStateMachine.Event: Expect]) -> Row {
            Dictionary(uniqueKeysWithValues: entries.map { (Probe.event($0.key), $0.value) })
        }

        static let eventsIgnored = events(Dictionary(uniqueKeysWithValues: VMStateMachine.Event.allCases.map { ($0, Expect.ignored) }))

        /// Events while a VMM runs and nothing is tearing it down.
        static func liveEvents(vmShutdown: Expect = .to(.shuttingDown, [])) -> Row {
            events([
                .vmmStarting: .ignored, .vmBooting: .ignored, .vmBooted: .ignored, .vmPausing: .ignored,
                .vmPaused: .ignored, .vmResuming: .ignored, .vmResumed: .ignored,
                .vmShutdown: vmShutdown, .vmDeleted: .ignored, .vmRebooting: .ignored, .vmRebooted: .ignored,
                .vmmShutdown: .to(.shuttingDown, []), .deviceActivated: .ignored,
                .guestPanic: .to(.failing, [.teardown(.signals)]),
            ])
        }

        static func exits(_ expect: (VMStateMachine.ProcessExit) -> Expect) -> Row {
            Dictionary(uniqueKeysWithValues: Probe.exits.map { (Probe.exit($0), expect($0)) })
        }

        static func commands(_ entries: [VMStateMachine.Command: Expect]) -> Row {
            Dictionary(uniqueKeysWithValues: entries.map { (Probe.command($0.key), $0.value) })
        }

        static func row(_ parts: Row...) -> Row {
            parts.reduce(into: Row()) { row, part in
                row.merge(part) { _, _ in preconditionFailure("a probe appears twice in one row") }
            }
        }

        static let table: [VMStateMachine.State.Kind: Row] = [
            .created: row(
                commands([.start: .to(.booting, [.launch]), .pause: .illegal, .resume: .illegal, .reboot: .illegal,
                          .stop: .ignored, .powerButton: .illegal, .delete: .to(.deleted, [.remove])]),
                [.launched: .ignored, .launchFailed: .ignored],
                stale(VMStateMachine.Call.allCases), eventsIgnored, exits { _ in .ignored }),

            .booting: row(
                commands([.start: .busy, .pause: .busy, .resume: .busy, .reboot: .busy,
                          .stop: .to(.shuttingDown, [.teardown(.graceful)]), .powerButton: .busy,
                          .delete: .to(.deleting, [.teardown(.graceful)])]),
                [.launched: .stay([.call(.create)]), .launchFailed: .to(.failed, [.release])],
                awaited(.create, success: .stay([.call(.boot)]), rejected: .to(.failing, [.report, .teardown(.graceful)])),
                awaited(.boot, success: .to(.running, []), rejected: .to(.failing, [.report, .teardown(.graceful)])),
                stale(callsExcept(.create, .boot)), liveEvents(), exits { _ in .to(.failed, [.release]) }),

            .running: row(
                commands([.start: .illegal, .pause: .to(.pausing, [.call(.pause)]), .resume: .illegal,
                          .reboot: .to(.rebooting, [.call(.reboot)]), .stop: .to(.shuttingDown, [.teardown(.graceful)]),
                          .powerButton: .stay([.call(.powerButton)]), .delete: .to(.deleting, [.teardown(.graceful)])]),
                [.launched: .ignored, .launchFailed: .ignored],
                stale(VMStateMachine.Call.allCases), liveEvents(), exits { _ in .to(.failed, [.release]) }),

            .pausing: row(
                commands([.start: .busy, .pause: .busy, .resume: .busy, .reboot: .busy,
                          .stop: .to(.shuttingDown, [.teardown(.graceful)]), .powerButton: .busy,
                          .delete: .to(.deleting, [.teardown(.graceful)])]),
                [.launched: .ignored, .launchFailed: .ignored],
                awaited(.pause, success: .to(.paused, []), rejected: .to(.running, [.report])),
                stale(callsExcept(.pause)), liveEvents(), exits { _ in .to(.failed, [.release]) }),

            .paused: row(
                commands([.start: .illegal, .pause: .illegal, .resume: .to(.resuming, [.call(.resume)]), .reboot: .illegal,
                          .stop: .to(.shuttingDown, [.teardown(.graceful)]), .powerButton: .illegal,
                          .delete: .to(.deleting, [.teardown(.graceful)])]),
                [.launched: .ignored, .launchFailed: .ignored],
                stale(VMStateMachine.Call.allCases), liveEvents(), exits { _ in .to(.failed, [.release]) }),

            .resuming: row(
                commands([.start: .busy, .pause: .busy, .resume: .busy, .reboot: .busy,
                          .stop: .to(.shuttingDown, [.teardown(.graceful)]), .powerButton: .busy,
                          .delete: .to(.deleting, [.teardown(.graceful)])]),
                [.launched: .ignored, .launchFailed: .ignored],
                awaited(.resume, success: .to(.running, []), rejected: .to(.paused, [.report])),
                stale(callsExcept(.resume)), liveEvents(), exits { _ in .to(.failed, [.release]) }),

            .rebooting: row(
                commands([.start: .busy, .pause: .busy, .resume: .busy, .reboot: .busy,
                          .stop: .to(.shuttingDown, [.teardown(.graceful)]), .powerButton: .busy,
                          .delete: .to(.deleting, [.teardown(.graceful)])]),
                [.launched: .ignored, .launchFailed: .ignored],
                awaited(.reboot, success: .to(.running, []), rejected: .to(.failing, [.report, .teardown(.graceful)])),
                stale(callsExcept(.reboot)), liveEvents(vmShutdown: .ignored), exits { _ in .to(.failed, [.release]) }),

            .shuttingDown: row(
                commands([.start: .busy, .pause: .illegal, .resume: .illegal, .reboot: .illegal,
                          .stop: .stay([.teardown(.graceful)]), .powerButton: .illegal,
                          .delete: .to(.deleting, [.teardown(.graceful)])]),
                [.launched: .stay([.teardown(.graceful)]), .launchFailed: .to(.shutdown, [.release])],
                stale(VMStateMachine.Call.allCases), eventsIgnored,
                exits { exit in
                    switch exit {
                    case .clean, .killedByNode: .to(.shutdown, [.release])
                    default: .to(.failed, [.release])
                    }
                }),

            .shutdown: row(
                commands([.start: .to(.booting, [.launch]), .pause: .illegal, .resume: .illegal, .reboot: .illegal,
                          .stop: .ignored, .powerButton: .illegal, .delete: .to(.deleted, [.remove])]),
                [.launched: .ignored, .launchFailed: .ignored],
                stale(VMStateMachine.Call.allCases), eventsIgnored, exits { _ in .ignored }),

            .failing: row(
                commands([.start: .busy, .pause: .illegal, .resume: .illegal, .reboot: .illegal,
                          .stop: .ignored, .powerButton: .illegal, .delete: .to(.deleting, [])]),
                [.launched: .stay([.teardown(.signals)]), .launchFailed: .to(.failed, [.release])],
                stale(VMStateMachine.Call.allCases), eventsIgnored, exits { _ in .to(.failed, [.release]) }),

            .failed: row(
                commands([.start: .to(.booting, [.launch]), .pause: .illegal, .resume: .illegal, .reboot: .illegal,
                          .stop: .ignored, .powerButton: .illegal, .delete: .to(.deleted, [.remove])]),
                [.launched: .ignored, .launchFailed: .ignored],
                stale(VMStateMachine.Call.allCases), eventsIgnored, exits { _ in .ignored }),

            .deleting: row(
                commands([.start: .illegal, .pause: .illegal, .resume: .illegal, .reboot: .illegal,
                          .stop: .illegal, .powerButton: .illegal, .delete: .ignored]),
                [.launched: .stay([.teardown(.graceful)]), .launchFailed: .to(.deleted, [.release, .remove])],
                stale(VMStateMachine.Call.allCases), eventsIgnored, exits { _ in .to(.deleted, [.release, .remove]) }),

            .deleted: row(
                commands([.start: .illegal, .pause: .illegal, .resume: .illegal, .reboot: .illegal,
                          .stop: .illegal, .powerButton: .illegal, .delete: .ignored]),
                [.launched: .ignored, .launchFailed: .ignored],
                stale(VMStateMachine.Call.allCases), eventsIgnored, exits { _ in .ignored }),
        ]

        /// A machine in a state of that kind (failures carry a sample reason).
        static func sample(_ kind: VMStateMachine.State.Kind) -> VMStateMachine.State {
            switch kind {
            case .created: .created
            case .booting: .booting
            case .running: .running
            case .pausing: .pausing
            case .paused: .paused
            case .resuming: .resuming
            case .rebooting: .rebooting
            case .shuttingDown: .shuttingDown
            case .shutdown: .shutdown
            case .failing: .failing(.guestPanicked)
            case .failed: .failed(.launchFailed("sample"))
            case .deleting: .deleting
            case .deleted: .deleted
            }
        }

        static var pairs: [Pair] {
            VMStateMachine.State.Kind.allCases.flatMap { kind in Probe.all.map { Pair(state: kind, probe: $0) } }
        }
    }

    struct Pair: Sendable, CustomTestStringConvertible {
        let state: VMStateMachine.State.Kind
        let probe: Probe
        var testDescription: String { "\(state.rawValue) + \(probe.testDescription)" }
    }
}

@Suite("VM state machine: every (state, input) pair")
struct VMStateMachineTransitionTests {
    @Test("the expectation table covers every state and every input exactly")
    func tableIsComplete() {
        #expect(Set(VMStateMachineTable.Table.table.keys) == Set(VMStateMachine.State.Kind.allCases))
        let probes = Set(VMStateMachineTable.Probe.all)
        #expect(probes.count == VMStateMachineTable.Probe.all.count)
        for kind in VMStateMachine.State.Kind.allCases {
            let row = VMStateMachineTable.Table.table[kind] ?? [:]
            let missing = probes.subtracting(row.keys).map(\.testDescription).sorted()
            let extra = Set(row.keys).subtracting(probes).map(\.testDescription).sorted()
            #expect(missing.isEmpty, "\(kind.rawValue): no expectation for \(missing)")
            #expect(extra.isEmpty, "\(kind.rawValue): expectations for unknown inputs \(extra)")
        }
    }

    @Test("transition", arguments: VMStateMachineTable.Table.pairs)
    func transition(_ pair: VMStateMachineTable.Pair) throws {
        let expected = try #require(VMStateMachineTable.Table.table[pair.state]?[pair.probe], "no expectation")
        let before = VMStateMachineTable.Table.sample(pair.state)
        var machine = VMStateMachine(vmName: "web1", state: before)

        let actions: [VMStateMachine.Action]
        switch pair.probe {
        case .command(let command):
            do {
                actions = try machine.handle(command)
            } catch {
                #expect(expected == .refused(busy: error.busy), "refused: \(error)")
                #expect(machine.state == before, "a refused command changes nothing")
                #expect(error.state == before && error.command == command && error.vmName == "web1")
                return
            }
        default:
            let observation = try #require(pair.probe.observation)
            actions = machine.handle(observation)
        }

        var shapes: [VMStateMachineTable.Shape] = []
        var changes: [VMStateMachine.Action] = []
        for action in actions {
            switch action {
            case .stateChanged: changes.append(action)
            case .launchVMM: shapes.append(.launch)
            case .callVMM(let call): shapes.append(.call(call))
            case .reportFailure(let call, let error):
                shapes.append(.report)
                if case .call(let probed, _) = pair.probe {
                    #expect(call == probed && error == pair.probe.error, "reports the failed call with its error")
                }
            case .startTeardown(let teardown): shapes.append(.teardown(teardown))
            case .releaseHostResources: shapes.append(.release)
            case .removeRuntimeDirectory: shapes.append(.remove)
            }
        }

        switch expected {
        case .refused:
            Issue.record("accepted, expected a refusal; actions \(actions)")
        case .stay(let expectedShapes):
            #expect(machine.state == before)
            #expect(changes.isEmpty)
            #expect(shapes == expectedShapes)
        case .to(let kind, let expectedShapes):
            #expect(machine.state.kind == kind)
            #expect(changes == [.stateChanged(from: before, to: machine.state)])
            if let first = actions.first { #expect(first == .stateChanged(from: before, to: machine.state)) }
            #expect(shapes == expectedShapes)
        }
    }
}
