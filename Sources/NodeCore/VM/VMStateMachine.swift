#if canImport(Glibc)
import Glibc
#endif

/// The life of one VM on this node, as a pure value: it is fed operator commands and what the node
/// observes (launch outcome, API results, VMM events, the VMM process's exit) and answers with the
/// actions its owner (the VM's actor) must perform, in order. It never performs anything itself.
///
/// Decisions this machine encodes:
/// - **One VMM process per boot.** `Shutdown` and `Failed` mean the VMM process is gone and the
///   host resources are released; `start` from there launches a fresh VMM. A guest power-off ends
///   the VMM process anyway (and `vm.shutdown` would leave an idle VMM holding hugepages and TAPs),
///   so a stop tears the process down instead of parking the VM in cloud-hypervisor's `Created`.
/// - **Release happens when the process is seen gone.** Host resources are released on the
///   transition that observes the VMM's exit (or a failed launch), never while it may still run.
/// - **Shutdown or failure is decided from events and the exit together.** A `vm/shutdown` or
///   `vmm/shutdown` event moves a live VM to `ShuttingDown`; a clean exit in `ShuttingDown`
///   (or one the node caused) is a `Shutdown`, any other exit is `Failed`. A clean exit without a
///   shutdown event or a stop request (a vCPU failure exits with status 0) is `Failed`. The owner
///   must drain the event stream to its end before feeding the exit, so every event the VMM wrote
///   precedes it.
/// - **One operation in flight, no queue.** A transitional state (`Booting`, `Pausing`,
///   `Resuming`, `Rebooting`, `ShuttingDown`, `Failing`) has an operation in flight; a command that
///   would start another one is refused with a `busy` ``IllegalTransition`` (the caller retries
///   once the state settles). `stop` and `delete` are always accepted on a live VM: they override
///   whatever is in flight, and the late result of the overridden call is then only reported.
/// - **`stop` and `delete` are idempotent**, like cloud-hypervisor's `vm.delete`: stopping a VM that
///   does not run, or deleting a deleted one, succeeds with nothing to do.
/// - `power-button` asks the guest to shut down and does not occupy the VM: the guest may ignore
///   it; if it complies, its power-off arrives as events and the process exit.
public struct VMStateMachine: Hashable, Sendable, Codable {
    /// The VM's name, used in error messages.
    public let vmName: String
    public private(set) var state: State

    /// A machine in `state` (`created` for a new VM; a restored state for a VM the node knew).
    public init(vmName: String, state: State = .created) {
        self.vmName = vmName
        self.state = state
    }

    // MARK: - Vocabulary

    /// Where the VM is. Stable states hold no operation in flight; transitional ones do.
    public enum State: Hashable, Sendable, Codable, CustomStringConvertible {
        /// Known to the node; no VMM process, no host resources held.
        case created
        /// Preparing the host, launching the VMM, `vm.create` and `vm.boot` in flight.
        case booting
        case running
        case pausing
        case paused
        case resuming
        case rebooting
        /// The VMM is on its way out after a stop, or the guest powered off.
        case shuttingDown
        /// The VMM process is gone after a shutdown, host resources released; `start` boots again.
        case shutdown
        /// A failure was detected while the VMM still runs; it is being torn down.
        case failing(Failure)
        /// The VMM process is gone after a failure, host resources released; `start` boots again.
        case failed(Failure)
        /// Being deleted: the VMM is torn down, then everything is removed.
        case deleting
        /// Gone for good: process, host resources and runtime directory.
        case deleted

        /// The state without its failure detail.
        public var kind: Kind {
            switch self {
            case .created: .created
            case .booting: .booting
            case .running: .running
            case .pausing: .pausing
            case .paused: .paused
            case .resuming: .resuming
            case .rebooting: .rebooting
            case .shuttingDown: .shuttingDown
            case .shutdown: .shutdown
            case .failing: .failing
            case .failed: .failed
            case .deleting: .deleting
            case .deleted: .deleted
            }
        }

        public var description: String { kind.rawValue }

        /// The failure, in `Failing` and `Failed`.
        public var failure: Failure? {
            switch self {
            case .failing(let failure), .failed(let failure): failure
            default: nil
            }
        }

        /// Whether a VMM process may exist in this state.
        public var vmmMayRun: Bool {
            switch kind {
            case .created, .shutdown, .failed, .deleted: false
            default: true
            }
        }

        /// The state names operators see.
        public enum Kind: String, Hashable, Sendable, Codable, CaseIterable {
            case created = "Created", booting = "Booting", running = "Running", pausing = "Pausing"
            case paused = "Paused", resuming = "Resuming", rebooting = "Rebooting"
            case shuttingDown = "ShuttingDown", shutdown = "Shutdown", failing = "Failing", failed = "Failed"
            case deleting = "Deleting", deleted = "Deleted"
        }
    }

    /// Why a VM failed.
    public enum Failure: Hashable, Sendable, Codable, CustomStringConvertible {
        /// Host preparation or spawning the VMM failed.
        case launchFailed(String)
        /// A VMM call the VM cannot survive failed (`vm.create`, `vm.boot`, `vm.reboot`, or any
        /// call that got no answer).
        case callFailed(Call, CallError)
        /// The VMM process ended when it should not have.
        case vmmExited(ProcessExit)
        /// The guest reported a panic (`guest/panic`).
        case guestPanicked

        public var description: String {
            switch self {
            case .launchFailed(let reason): "launch failed: \(reason)"
            case .callFailed(let call, let error): "\(call.rawValue) failed: \(error)"
            case .vmmExited(let exit): "the VMM process ended unexpectedly: \(exit)"
            case .guestPanicked: "the guest kernel panicked"
            }
        }
    }

    /// What an operator asks for.
    public enum Command: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        /// Launch the VMM and boot the guest.
        case start
        case pause
        case resume
        case reboot
        /// Stop gracefully: the teardown ladder (API, then SIGTERM, then SIGKILL).
        case stop
        /// Press the ACPI power button; the guest decides.
        case powerButton = "power-button"
        /// Stop if needed, release everything, remove the runtime directory.
        case delete

        /// The verb phrase in error messages: `cannot <phrase> vm 'web1'`.
        public var description: String {
            self == .powerButton ? "press the power button of" : rawValue
        }
    }

    /// A VMM API call this machine asks for.
    public enum Call: String, Hashable, Sendable, Codable, CaseIterable {
        case create = "vm.create"
        case boot = "vm.boot"
        case pause = "vm.pause"
        case resume = "vm.resume"
        case reboot = "vm.reboot"
        case powerButton = "vm.power-button"
    }

    /// A failed VMM call, as far as the state machine needs to tell failures apart.
    public struct CallError: Error, Hashable, Sendable, Codable, CustomStringConvertible {
        public enum Kind: Hashable, Sendable, Codable {
            /// The VMM answered with an error status; it is alive and refused.
            case rejected(status: Int)
            /// No usable answer (deadline passed, broken or malformed exchange): the VMM is hung
            /// or broken.
            case noAnswer
            /// The VMM is going away (socket closed, or "receiving on a closed channel").
            case vmmGone
        }

        public var kind: Kind
        /// The VMM's error chain (outermost first), or the node's own description.
        public var chain: [String]

        public init(_ kind: Kind, chain: [String]) {
            self.kind = kind
            self.chain = chain
        }

        public var description: String {
            let text = chain.joined(separator: ": ")
            switch kind {
            case .rejected(let status): return "HTTP \(status): \(text)"
            case .noAnswer: return "no answer: \(text)"
            case .vmmGone: return "the VMM is gone: \(text)"
            }
        }
    }

    /// How a call ended.
    public enum CallOutcome: Hashable, Sendable {
        case success
        case failure(CallError)
    }

    /// The events of cloud-hypervisor's event monitor this machine reads.
    public enum Event: String, Hashable, Sendable, CaseIterable {
        case vmmStarting = "vmm/starting"
        case vmBooting = "vm/booting"
        case vmBooted = "vm/booted"
        case vmPausing = "vm/pausing"
        case vmPaused = "vm/paused"
        case vmResuming = "vm/resuming"
        case vmResumed = "vm/resumed"
        case vmShutdown = "vm/shutdown"
        case vmDeleted = "vm/deleted"
        case vmRebooting = "vm/rebooting"
        case vmRebooted = "vm/rebooted"
        case vmmShutdown = "vmm/shutdown"
        case deviceActivated = "virtio-device/activated"
        case guestPanic = "guest/panic"

        /// The event for a `source` and `event` pair of the stream; `nil` for events this machine
        /// does not read.
        public init?(source: String, event: String) {
            self.init(rawValue: "\(source)/\(event)")
        }
    }

    /// How the VMM process ended, as classified by its owner (see ``classify(status:signal:coreDumped:signalledByNode:oomKilled:vmmLog:)``).
    public enum ProcessExit: Hashable, Sendable, Codable, CustomStringConvertible {
        /// Exit status 0 and nothing in the VMM's log saying otherwise. Whether that is a shutdown
        /// depends on the events seen before.
        case clean
        /// Exit status 0, but the VMM logged a vCPU error (cloud-hypervisor exits 0 then too).
        case vcpuFailure(String)
        /// A non-zero exit status.
        case exitStatus(Int32)
        /// Killed by a core-dumping signal (SIGSEGV, SIGBUS, SIGABRT…): a VMM crash.
        case crashed(signal: Int32)
        /// Killed by another signal nobody on this node sent.
        case signaled(Int32)
        /// Killed by the kernel's OOM killer.
        case oomKilled
        /// Killed by its seccomp filter (SIGSYS).
        case seccompKilled
        /// Ended after the node signalled it (teardown ladder), whatever its status.
        case killedByNode

        public var description: String {
            switch self {
            case .clean: "exited with status 0 without a shutdown"
            case .vcpuFailure(let line): "exited with status 0 after a vCPU error: \(line)"
            case .exitStatus(let status): "exited with status \(status)"
            case .crashed(let signal): "crashed with signal \(signal)"
            case .signaled(let signal): "killed by signal \(signal)"
            case .oomKilled: "killed by the OOM killer"
            case .seccompKilled: "killed by its seccomp filter (SIGSYS)"
            case .killedByNode: "stopped by the node"
            }
        }

        /// Lines cloud-hypervisor logs when a vCPU fails (it then exits with status 0).
        public static let vcpuFailureMarkers = ["VCPU generated error", "vCPU thread panicked"]

        /// Classifies a wait status. `status` is the exit code when the process exited, `signal`
        /// the terminating signal when it was killed; `vmmLog` is the tail of the VMM's log, read
        /// only for a status-0 exit.
        public static func classify(status: Int32?, signal: Int32?, coreDumped: Bool, signalledByNode: Bool,
                                    oomKilled: Bool, vmmLog: String = "") -> ProcessExit {
            if signalledByNode { return .killedByNode }
            if let signal {
                if oomKilled, signal == SIGKILL { return .oomKilled }
                if signal == SIGSYS { return .seccompKilled }
                return coreDumped ? .crashed(signal: signal) : .signaled(signal)
            }
            let code = status ?? 0
            guard code == 0 else { return .exitStatus(code) }
            for line in vmmLog.split(separator: "\n", omittingEmptySubsequences: true)
            where vcpuFailureMarkers.contains(where: { line.contains($0) }) {
                return .vcpuFailure(String(line))
            }
            return .clean
        }
    }

    /// What the node observed about this VM.
    public enum Observation: Hashable, Sendable {
        /// The host is prepared and the VMM process runs (answer to ``Action/launchVMM``).
        case launched
        /// Host preparation or the spawn failed (answer to ``Action/launchVMM``).
        case launchFailed(String)
        /// A VMM call ended (answer to ``Action/callVMM(_:)``).
        case callEnded(Call, CallOutcome)
        /// An event from the VMM's event monitor.
        case event(Event)
        /// The VMM process ended (after its event stream was drained).
        case processExited(ProcessExit)
    }

    /// How the teardown ladder starts.
    public enum Teardown: Hashable, Sendable {
        /// API first (`vm.shutdown`, `vmm.shutdown`), then SIGTERM, then SIGKILL, each with a deadline.
        case graceful
        /// The API is unusable: SIGTERM, then SIGKILL.
        case signals
    }

    /// What the owner must do, in the order given.
    public enum Action: Hashable, Sendable {
        /// Publish the state change.
        case stateChanged(from: State, to: State)
        /// Prepare the host (runtime directory, hugepages, NICs, cgroup) and spawn the VMM; feed
        /// back `.launched` or `.launchFailed`.
        case launchVMM
        /// Call the VMM; feed back `.callEnded(call, outcome)`.
        case callVMM(Call)
        /// Tell whoever asked for `call` that it failed.
        case reportFailure(Call, CallError)
        /// Make the VMM process go away with the ladder (idempotent while one runs); its exit comes
        /// back as `.processExited`.
        case startTeardown(Teardown)
        /// Undo the host preparation (TAPs, cgroup, hugepage reservation, sockets); idempotent.
        case releaseHostResources
        /// Remove the VM's runtime directory and its durable state.
        case removeRuntimeDirectory
    }

    /// A command refused without any VMM call.
    public struct IllegalTransition: Error, Hashable, Sendable, CustomStringConvertible {
        public let vmName: String
        public let command: Command
        public let state: State
        /// The command may be accepted once the operation in flight settles.
        public let busy: Bool

        public var description: String {
            let base = "cannot \(command) vm '\(vmName)': it is \(state)"
            return busy ? base + " (an operation is in flight; retry when it settles, or stop the vm)" : base
        }
    }

    // MARK: - Transitions

    /// Applies an operator command; throws without changing anything when the state forbids it.
    public mutating func handle(_ command: Command) throws(IllegalTransition) -> [Action] {
        let kind = state.kind
        func refuse(busy: Bool = false) -> IllegalTransition {
            IllegalTransition(vmName: vmName, command: command, state: state, busy: busy)
        }
        let settling: Set<State.Kind> = [.booting, .pausing, .resuming, .rebooting]

        switch command {
        case .start:
            switch kind {
            case .created, .shutdown, .failed: return move(to: .booting, then: [.launchVMM])
            case .booting, .pausing, .resuming, .rebooting, .shuttingDown, .failing: throw refuse(busy: true)
            case .running, .paused, .deleting, .deleted: throw refuse()
            }
        case .pause:
            if kind == .running { return move(to: .pausing, then: [.callVMM(.pause)]) }
            throw refuse(busy: settling.contains(kind))
        case .resume:
            if kind == .paused { return move(to: .resuming, then: [.callVMM(.resume)]) }
            throw refuse(busy: settling.contains(kind))
        case .reboot:
            if kind == .running { return move(to: .rebooting, then: [.callVMM(.reboot)]) }
            throw refuse(busy: settling.contains(kind))
        case .powerButton:
            if kind == .running { return [.callVMM(.powerButton)] }
            throw refuse(busy: settling.contains(kind))
        case .stop:
            switch kind {
            case .booting, .running, .pausing, .paused, .resuming, .rebooting:
                return move(to: .shuttingDown, then: [.startTeardown(.graceful)])
            case .shuttingDown: return [.startTeardown(.graceful)]
            case .created, .shutdown, .failing, .failed: return []
            case .deleting, .deleted: throw refuse()
            }
        case .delete:
            switch kind {
            case .booting, .running, .pausing, .paused, .resuming, .rebooting, .shuttingDown:
                return move(to: .deleting, then: [.startTeardown(.graceful)])
            case .failing: return move(to: .deleting, then: [])
            case .created, .shutdown, .failed: return move(to: .deleted, then: [.removeRuntimeDirectory])
            case .deleting, .deleted: return []
            }
        }
    }

    /// Applies an observation. Observations that mean nothing in the current state (a stale
    /// result, a confirming event) give no actions.
    public mutating func handle(_ observation: Observation) -> [Action] {
        switch observation {
        case .launched: launched()
        case .launchFailed(let reason): launchFailed(reason)
        case .callEnded(let call, let outcome): callEnded(call, outcome)
        case .event(let event): received(event)
        case .processExited(let exit): processExited(exit)
        }
    }

    private mutating func launched() -> [Action] {
        switch state.kind {
        case .booting: [.callVMM(.create)]
        case .shuttingDown, .deleting: [.startTeardown(.graceful)]
        case .failing: [.startTeardown(.signals)]
        default: []
        }
    }

    private mutating func launchFailed(_ reason: String) -> [Action] {
        switch state {
        case .booting: move(to: .failed(.launchFailed(reason)), then: [.releaseHostResources])
        case .shuttingDown: move(to: .shutdown, then: [.releaseHostResources])
        case .failing(let failure): move(to: .failed(failure), then: [.releaseHostResources])
        case .deleting: move(to: .deleted, then: [.releaseHostResources, .removeRuntimeDirectory])
        default: []
        }
    }

    /// The call each transitional state waits for, and where success and refusal lead.
    private func awaited(_ call: Call) -> (success: State, refused: State?)? {
        switch (state.kind, call) {
        case (.booting, .create): (.booting, nil)
        case (.booting, .boot): (.running, nil)
        case (.pausing, .pause): (.paused, .running)
        case (.resuming, .resume): (.running, .paused)
        case (.rebooting, .reboot): (.running, nil)
        default: nil
        }
    }

    private mutating func callEnded(_ call: Call, _ outcome: CallOutcome) -> [Action] {
        guard let next = awaited(call) else {
            // Not what this state waits for: an overridden call's late result, or power-button.
            if case .failure(let error) = outcome { return [.reportFailure(call, error)] }
            return []
        }
        switch outcome {
        case .success:
            if call == .create { return [.callVMM(.boot)] }
            return move(to: next.success, then: [])
        case .failure(let error):
            switch error.kind {
            case .rejected:
                if let refused = next.refused { return move(to: refused, then: [.reportFailure(call, error)]) }
                return move(to: .failing(.callFailed(call, error)),
                            then: [.reportFailure(call, error), .startTeardown(.graceful)])
            case .noAnswer:
                return move(to: .failing(.callFailed(call, error)),
                            then: [.reportFailure(call, error), .startTeardown(.signals)])
            case .vmmGone:
                // The process is ending; its exit (after the events) decides the state.
                return [.reportFailure(call, error)]
            }
        }
    }

    private mutating func received(_ event: Event) -> [Action] {
        let live: Set<State.Kind> = [.booting, .running, .pausing, .paused, .resuming, .rebooting]
        guard live.contains(state.kind) else { return [] }
        switch event {
        case .vmShutdown:
            // Older VMMs also write vm/shutdown in the middle of a reboot.
            if state.kind == .rebooting { return [] }
            return move(to: .shuttingDown, then: [])
        case .vmmShutdown:
            return move(to: .shuttingDown, then: [])
        case .guestPanic:
            return move(to: .failing(.guestPanicked), then: [.startTeardown(.signals)])
        case .vmmStarting, .vmBooting, .vmBooted, .vmPausing, .vmPaused, .vmResuming, .vmResumed,
             .vmDeleted, .vmRebooting, .vmRebooted, .deviceActivated:
            return []
        }
    }

    private mutating func processExited(_ exit: ProcessExit) -> [Action] {
        switch state {
        case .created, .shutdown, .failed, .deleted:
            return []
        case .booting, .running, .pausing, .paused, .resuming, .rebooting:
            return move(to: .failed(.vmmExited(exit)), then: [.releaseHostResources])
        case .shuttingDown:
            switch exit {
            case .clean, .killedByNode: return move(to: .shutdown, then: [.releaseHostResources])
            default: return move(to: .failed(.vmmExited(exit)), then: [.releaseHostResources])
            }
        case .failing(let failure):
            return move(to: .failed(failure), then: [.releaseHostResources])
        case .deleting:
            return move(to: .deleted, then: [.releaseHostResources, .removeRuntimeDirectory])
        }
    }

    private mutating func move(to next: State, then actions: [Action]) -> [Action] {
        guard next != state else { return actions }
        let previous = state
        state = next
        return [.stateChanged(from: previous, to: next)] + actions
    }
}
