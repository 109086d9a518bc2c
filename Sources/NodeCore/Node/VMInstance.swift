import Foundation
public import LinuxSys
public import VMModel
#if canImport(Glibc)
import Glibc
#endif

/// Why an operation on a VM did not succeed.
public enum VMOperationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The VM's state forbids the command; nothing was sent to the VMM.
    case illegal(VMStateMachine.IllegalTransition)
    /// The VMM refused or did not answer; `chain` is its error chain.
    case callFailed(vm: String, call: VMStateMachine.Call, VMStateMachine.CallError)
    /// The operation ended with the VM in `state` (e.g. `Failed` after a start).
    case ended(vm: String, command: VMStateMachine.Command, state: VMStateMachine.State)
    /// A call outside the state machine (info, counters, hotplug) needs a running VMM.
    case notRunning(vm: String, state: VMStateMachine.State)
    case vmmCall(vm: String, operation: String, VMStateMachine.CallError)
    /// The node could not write the VM's durable record (the VM itself is fine).
    case bookkeeping(vm: String, SystemError)

    public var description: String {
        switch self {
        case .illegal(let refusal): refusal.description
        case .callFailed(let vm, let call, let error): "vm '\(vm)': \(call.rawValue) failed: \(error)"
        case .ended(let vm, let command, let state):
            "vm '\(vm)': \(command) ended with the vm \(state)" + (state.failure.map { " (\($0))" } ?? "")
        case .notRunning(let vm, let state): "vm '\(vm)' has no running VMM (it is \(state))"
        case .vmmCall(let vm, let operation, let error): "vm '\(vm)': \(operation) failed: \(error)"
        case .bookkeeping(let vm, let error): "vm '\(vm)': its record could not be written: \(error)"
        }
    }
}

/// What the node reports about one VM.
public struct VMStatus: Hashable, Sendable {
    public let id: String
    public let name: String
    public let backend: VMMKind
    public let state: VMStateMachine.State
    /// The VMM process, while one runs.
    public let vmmProcess: ProcessIdentity?
    public let runtimeDirectory: String
    /// The node's log of the guest's serial port.
    public let serialLog: String
}

/// One VM on this node: an actor around its ``VMStateMachine`` that performs the machine's actions
/// (host preparation and launch, VMM calls, the teardown ladder, release) and feeds it what
/// happens (call results, VMM events, the process exit). Operations are serialized by the machine:
/// each command enters its transitional state before the first `await`, so a concurrent command
/// sees it; an illegal one is refused without any VMM call.
public actor VMInstance {
    public nonisolated let id: String
    public nonisolated let name: String
    public nonisolated let spec: VMSpec
    public nonisolated let backend: any VMMBackend
    private let configuration: NodeConfiguration
    private let supervisor: Supervisor
    private let records: VMRecordStore
    private var machine: VMStateMachine
    private var host: PreparedHost?
    private var control: (any VMMControl)?
    private var eventsTask: Task<Void, Never>?
    private var teardownTask: Task<Void, Never>?
    private var process: ProcessIdentity?
    private var reported: [VMOperationError] = []
    private var settledWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiter: UInt64 = 0

    init(id: String, spec: VMSpec, backend: any VMMBackend, configuration: NodeConfiguration,
         supervisor: Supervisor, records: VMRecordStore, state: VMStateMachine.State = .created) {
        self.id = id
        self.name = spec.name
        self.spec = spec
        self.backend = backend
        self.configuration = configuration
        self.supervisor = supervisor
        self.records = records
        machine = VMStateMachine(vmName: spec.name, state: state)
    }

    public var state: VMStateMachine.State { machine.state }

    public var status: VMStatus {
        let runtime = try? VMRuntimeDirectory(vmID: id, root: configuration.runtimeRoot)
        return VMStatus(id: id, name: name, backend: backend.kind, state: machine.state, vmmProcess: process,
                        runtimeDirectory: runtime?.path ?? "",
                        serialLog: runtime.map(backend.serialLog) ?? "")
    }

    // MARK: - Commands

    /// Prepares the host, launches the VMM and boots the guest; returns once it runs.
    public func start() async throws(VMOperationError) { try await command(.start, until: [.running]) }
    /// Stops the VM along the teardown ladder; returns once the VMM is gone and everything released.
    public func stop() async throws(VMOperationError) { try await command(.stop, until: [.shutdown, .failed, .created]) }
    public func pause() async throws(VMOperationError) { try await command(.pause, until: [.paused]) }
    public func resume() async throws(VMOperationError) { try await command(.resume, until: [.running]) }
    public func reboot() async throws(VMOperationError) { try await command(.reboot, until: [.running]) }
    /// Presses the ACPI power button; the guest decides.
    public func powerButton() async throws(VMOperationError) { try await command(.powerButton, until: []) }
    /// Stops the VM if needed, releases everything and removes its runtime directory and record.
    public func delete() async throws(VMOperationError) { try await command(.delete, until: [.deleted]) }

    /// Waits until the VM is in a stable state (no operation in flight).
    /// Returns early, in whatever state, when the task is cancelled.
    public func settled() async -> VMStateMachine.State {
        while !Self.isStable(machine.state), !Task.isCancelled {
            await nextSettledState()
        }
        return machine.state
    }

    /// Waits until the VM reaches a stable state of one of `kinds` (e.g. `Shutdown` after a guest
    /// power-off); returns the state.
    /// Returns early, in whatever state, when the task is cancelled.
    public func wait(for kinds: Set<VMStateMachine.State.Kind>) async -> VMStateMachine.State {
        while !kinds.contains(machine.state.kind), !Task.isCancelled {
            await nextSettledState()
        }
        return machine.state
    }

    /// Suspends until the VM next settles in a stable state, or the task is cancelled.
    private func nextSettledState() async {
        let id = nextWaiter
        nextWaiter += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled { return continuation.resume() }
                settledWaiters[id] = continuation
            }
        } onCancel: {
            Task { await self.wakeWaiter(id) }
        }
    }

    private func wakeWaiter(_ id: UInt64) {
        settledWaiters.removeValue(forKey: id)?.resume()
    }

    private func command(_ command: VMStateMachine.Command, until goals: Set<VMStateMachine.State.Kind>) async throws(VMOperationError) {
        let actions: [VMStateMachine.Action]
        do { actions = try machine.handle(command) } catch { throw .illegal(error) }
        let mark = reported.count
        await perform(actions)
        if goals.isEmpty {
            if let failure = reported.dropFirst(mark).first { throw failure }
            return
        }
        let final = await settled()
        if goals.contains(final.kind) && (command == .stop || command == .delete || reported.count == mark) { return }
        if let failure = reported.dropFirst(mark).first { throw failure }
        if goals.contains(final.kind) { return }
        throw .ended(vm: name, command: command, state: final)
    }

    // MARK: - Queries and hotplug

    public func info() async throws(VMOperationError) -> VMMInfo {
        let control = try liveControl()
        do { return try await control.info() } catch { throw .vmmCall(vm: name, operation: "info", error) }
    }

    public func counters() async throws(VMOperationError) -> [String: [String: Int64]] {
        let control = try liveControl()
        do { return try await control.counters() } catch { throw .vmmCall(vm: name, operation: "counters", error) }
    }

    /// Hot-plugs a TAP or MACVTAP NIC: the node makes the host device, the VMM gets its fds.
    public func addNIC(_ nic: NICSpec) async throws(VMOperationError) -> VMMDevice {
        let control = try liveControl()
        guard let host, nic.kind != .vhostUser else {
            throw .vmmCall(vm: name, operation: "add nic \(nic.id)", .init(.rejected(status: 400), chain: ["only tap and macvtap NICs can be hot-plugged"]))
        }
        let prepared: HostNIC
        do {
            prepared = try await host.addNIC(nic, field: "nic", configuration: configuration)
        } catch {
            throw .vmmCall(vm: name, operation: "add nic \(nic.id)", .init(.rejected(status: 400), chain: [error.description]))
        }
        do {
            let device = try await control.addNIC(nic, host: prepared)
            try? await records.writeHost(host.record)
            return device
        } catch {
            await host.removeNIC(id: nic.id)
            throw .vmmCall(vm: name, operation: "add nic \(nic.id)", error)
        }
    }

    /// Asks the guest to release NIC `nicID`, then deletes its host device.
    public func removeNIC(id nicID: String) async throws(VMOperationError) {
        let control = try liveControl()
        do { try await control.removeDevice(id: nicID) } catch {
            throw .vmmCall(vm: name, operation: "remove nic \(nicID)", error)
        }
        if let host, await host.removeNIC(id: nicID) {
            try? await records.writeHost(host.record)
        }
    }

    public func addDisk(_ disk: DiskSpec) async throws(VMOperationError) -> VMMDevice {
        let control = try liveControl()
        do { return try await control.addDisk(disk) } catch { throw .vmmCall(vm: name, operation: "add disk \(disk.id)", error) }
    }

    public func removeDevice(id device: String) async throws(VMOperationError) {
        let control = try liveControl()
        do { try await control.removeDevice(id: device) } catch { throw .vmmCall(vm: name, operation: "remove device \(device)", error) }
    }

    private func liveControl() throws(VMOperationError) -> any VMMControl {
        guard let control, [.running, .paused].contains(machine.state.kind) else {
            throw .notRunning(vm: name, state: machine.state)
        }
        return control
    }

    // MARK: - Observations

    /// The VMM process ended (delivered by the node's supervisor). The event stream is drained to
    /// its end first, so every event the VMM wrote precedes the exit.
    func processExited(_ exit: ProcessExit) async {
        if let events = eventsTask {
            let drained: Void? = await waitWithTimeout(configuration.eventDrainTimeout) { await events.value }
            if drained == nil { control?.close() }
        }
        eventsTask = nil
        teardownTask = nil
        process = nil
        var log = ""
        if exit.reason == .exited(status: 0) {
            let path = (try? VMRuntimeDirectory(vmID: id, root: configuration.runtimeRoot))?.vmmLog
            log = await HostPreparation.onHostThread { Self.tail(of: path) }
        }
        await perform(machine.handle(.processExited(Self.classify(exit, vmmLog: log))))
        configuration.bootObserver?.milestone(id, .vmmExited)
    }

    private func received(_ event: VMStateMachine.Event) async {
        if event == .vmBooted { configuration.bootObserver?.milestone(id, .guestBooted) }
        await perform(machine.handle(.event(event)))
    }

    // MARK: - Actions

    private func perform(_ actions: [VMStateMachine.Action]) async {
        defer {
            if Self.isStable(machine.state), !settledWaiters.isEmpty {
                let waiters = settledWaiters.values
                settledWaiters = [:]
                for waiter in waiters { waiter.resume() }
            }
        }
        for action in actions {
            switch action {
            case .stateChanged:
                // Waiters are woken once the whole list ran (release and removal included).
                continue
            case .launchVMM:
                let observation = await launch()
                await perform(machine.handle(observation))
            case .callVMM(let call):
                guard let control else {
                    await perform(machine.handle(.callEnded(call, .failure(.init(.vmmGone, chain: ["no VMM control channel"])))))
                    continue
                }
                let outcome: VMStateMachine.CallOutcome
                do {
                    try await control.perform(call)
                    outcome = .success
                    if call == .create { configuration.bootObserver?.milestone(id, .created) }
                    if call == .boot { configuration.bootObserver?.milestone(id, .bootReturned) }
                } catch {
                    outcome = .failure(error)
                }
                await perform(machine.handle(.callEnded(call, outcome)))
            case .reportFailure(let call, let error):
                reported.append(.callFailed(vm: name, call: call, error))
            case .startTeardown(let kind):
                startTeardown(kind)
            case .releaseHostResources:
                await release()
            case .removeRuntimeDirectory:
                await removeRuntimeDirectory()
            }
        }
    }

    /// Host preparation, spawn, supervision, control channel.
    private func launch() async -> VMStateMachine.Observation {
        let prepared: PreparedHost
        do {
            prepared = try await HostPreparation.prepare(spec, vmID: id, configuration: configuration)
        } catch {
            return .launchFailed(error.description)
        }
        host = prepared
        let observer = configuration.bootObserver
        observer?.milestone(id, .hostPrepared)
        // Before the spawn, so a node that dies at any point after it knows the VM's cgroup: a
        // restarted node finds there a VMM that has no supervisor record yet and kills it.
        do {
            try await records.writeHost(prepared.record)
        } catch {
            return .launchFailed("record the host resources of vm '\(name)': \(error)")
        }
        let context = VMMLaunchContext(
            vmID: id, spec: spec, runtime: prepared.runtime, user: configuration.vmmUser,
            cgroup: prepared.cgroup?.placement ?? .inherit, nics: prepared.nics,
            hugetlbfsMount: prepared.hugepages?.mount.mountPoint, seccomp: configuration.seccomp,
            environment: configuration.vmmEnvironment)
        let launch: VMMLaunch
        do throws(VMMBackendError) { launch = try backend.launch(for: context) } catch { return .launchFailed(error.description) }
        observer?.milestone(id, .launchPlanned)
        let spawned: SpawnedProcess
        do {
            spawned = try await Launcher.launch(launch.plan)
        } catch {
            launch.childEnds.closeAll()
            launch.nodeEnds.closeAll()
            return .launchFailed("spawn \(backend.binary): \(error)")
        }
        launch.childEnds.closeAll()
        observer?.milestone(id, .vmmSpawned)
        if let serial = observer?.serial {
            let id = self.id
            for output in launch.outputs where output.name == "serial" { output.observe { serial(id, $0) } }
        }
        let identity = spawned.identity
        let oomProbe: Supervisor.OOMProbe? = prepared.cgroup.map { group in { @Sendable in try? group.oomKillCount() ?? nil } }
        do throws(SupervisorError) {
            let pidfd: FileDescriptor
            do throws(SystemError) { pidfd = try spawned.pidfd.duplicate() } catch { throw .system(error) }
            try await supervisor.watch(vmID: id, pidfd: pidfd, identity: identity, outputs: launch.outputs,
                                       oomProbe: oomProbe)
        } catch {
            let pid = identity.pid
            await HostPreparation.onHostThread {
                // Still our unreaped child, so the pid cannot have been reused.
                _ = kill(pid, SIGKILL)
                _ = waitpid(pid, nil, 0)
            }
            return .launchFailed("supervise the VMM: \(error)")
        }
        // From here a teardown can reach the process through the supervisor.
        process = identity
        observer?.milestone(id, .supervised)
        do throws(VMMBackendError) {
            let control = try await backend.connect(context, launch: launch, process: identity)
            attach(control)
            observer?.milestone(id, .apiReady)
        } catch {
            launch.nodeEnds.closeAll()
            // The VMM runs but cannot be controlled: it goes before its resources are released.
            _ = try? await supervisor.stop(id, ladder: TeardownLadder(
                graceful: nil, gracefulTimeout: .zero, terminateTimeout: configuration.terminateTimeout,
                killTimeout: configuration.killTimeout))
            return .launchFailed(error.description)
        }
        return .launched
    }

    /// Feeds the control's events to the machine, in order, until the channel ends.
    private func attach(_ control: any VMMControl) {
        self.control = control
        let events = control.events
        eventsTask = Task { [weak self] in
            for await event in events {
                await self?.received(event)
            }
        }
    }

    private func startTeardown(_ kind: VMStateMachine.Teardown) {
        guard process != nil, teardownTask == nil else { return }
        let control = self.control
        var graceful: (@Sendable () async -> Void)?
        if kind == .graceful, let control { graceful = { await control.shutdown() } }
        let ladder = TeardownLadder(graceful: graceful, gracefulTimeout: configuration.gracefulTimeout,
                                    terminateTimeout: configuration.terminateTimeout, killTimeout: configuration.killTimeout)
        let supervisor = self.supervisor
        let id = self.id
        teardownTask = Task { [weak self] in
            do {
                _ = try await supervisor.stop(id, ladder: ladder)
            } catch {
                // Not stopped (e.g. not supervised yet): a later teardown request must run again.
                await self?.teardownFailed()
            }
        }
    }

    private func teardownFailed() {
        teardownTask = nil
    }

    private func release() async {
        control?.close()
        control = nil
        if let host {
            self.host = nil
            await host.release()
        }
        // The host record stays: a restarted node finds no VMM for it and releases it again, which
        // is idempotent — cheaper than another file operation on every stop.
    }

    private func removeRuntimeDirectory() async {
        let root = configuration.runtimeRoot
        let id = self.id
        await HostPreparation.onHostThread {
            try? VMRuntimeDirectory(vmID: id, root: root).remove()
        }
        try? await records.remove(id)
    }

    // MARK: - Re-adoption

    /// Takes over a VMM that a previous node instance launched.
    func adopt(process identity: ProcessIdentity, control: any VMMControl, host: PreparedHost) async {
        process = identity
        self.host = host
        attach(control)
        if let info = try? await control.info(), info.vmmState.lowercased() == "paused" {
            machine = VMStateMachine(vmName: name, state: .paused)
        } else {
            machine = VMStateMachine(vmName: name, state: .running)
        }
    }

    /// Releases what a previous node instance prepared for a VMM that was not re-adopted. Whatever
    /// still runs in the VM's cgroup is killed first: a VMM the previous node spawned but had not
    /// recorded yet (it stopped in between), or one it could not reconnect to. Nothing else joins a
    /// VM's cgroup, and the launcher's child is in it before it can exec: born there through
    /// `CLONE_INTO_CGROUP` where cgroup2 is mounted, joining the v1 groups as its first step
    /// otherwise. Returns the pids that were killed.
    func releaseOrphaned(_ host: PreparedHost) async -> [Int32] {
        let killTimeout = configuration.killTimeout
        let killed = await HostPreparation.onHostThread { () -> [Int32] in
            guard let group = host.cgroup, let pids = try? group.memberPIDs(), !pids.isEmpty else { return [] }
            try? group.killAll(timeout: killTimeout)
            return pids
        }
        await host.release()
        try? await records.removeHost(id)
        // A definition from before host records had their own file may still name this host.
        try? await records.write(VMRecord(id: id, spec: spec, backend: backend.kind, host: nil))
        return killed
    }

    /// Stops listening to the VMM without signalling it (the node is going away).
    func detach() {
        control?.close()
        eventsTask?.cancel()
        teardownTask?.cancel()
    }

    // MARK: - Helpers

    static func isStable(_ state: VMStateMachine.State) -> Bool {
        switch state.kind {
        case .created, .running, .paused, .shutdown, .failed, .deleted: true
        default: false
        }
    }

    static func classify(_ exit: ProcessExit, vmmLog: String) -> VMStateMachine.ProcessExit {
        switch exit.reason {
        case .exited(let status):
            .classify(status: status, signal: nil, coreDumped: false, signalledByNode: false, oomKilled: false, vmmLog: vmmLog)
        case .signaled(let signal, let core):
            .classify(status: nil, signal: signal, coreDumped: core, signalledByNode: false, oomKilled: false)
        case .killedBySeccomp: .seccompKilled
        case .oomKilled: .oomKilled
        case .killedByUs: .killedByNode
        case .exitedUnknownStatus: exit.duringTeardownStep != nil ? .killedByNode : .clean
        }
    }

    /// The last 16 KiB of the VMM's log.
    static func tail(of path: String?) -> String {
        guard let path, let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let end = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: end > 16_384 ? end - 16_384 : 0)
        return String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
    }
}
