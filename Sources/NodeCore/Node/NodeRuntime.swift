import LinuxSys
import NetPlumbing
public import VMModel

/// Why the node refused or failed a request.
public enum NodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The specification is unusable: every problem, with its field path.
    case invalidSpec([SpecProblem])
    case alreadyExists(name: String)
    case notFound(name: String)
    case operation(VMOperationError)
    /// The node's own state could not be set up or read.
    case setup(String)

    public var description: String {
        switch self {
        case .invalidSpec(let problems): problems.map(\.description).joined(separator: "\n")
        case .alreadyExists(let name): "vm '\(name)' already exists"
        case .notFound(let name): "no vm named '\(name)'"
        case .operation(let error): error.description
        case .setup(let reason): reason
        }
    }
}

/// What ``NodeRuntime/open(configuration:backend:)`` found from a previous node instance.
public struct NodeRecovery: Sendable {
    /// VMs whose VMM still ran and is supervised again.
    public var adopted: [String] = []
    /// VMs whose VMM was gone or was killed; their host resources were released.
    public var orphaned: [String] = []
    /// VMs (also in ``orphaned``) whose VMM still ran but could not be re-adopted — no supervisor
    /// record, because the previous node stopped between the spawn and writing it, or no control
    /// channel: the processes found in the VM's cgroup were killed.
    public var killed: [String] = []
    /// Tagged links of unknown VMs that were deleted.
    public var reapedLinks: [String] = []
    /// Records or links that could not be handled.
    public var problems: [String] = []
}

/// All VMs of this node: creation (validated against the specification rules, the backend and the
/// path policy, every problem at once), lookup, the per-VM commands, and durable records so a
/// restarted node re-adopts the VMMs still running.
public actor NodeRuntime {
    public nonisolated let configuration: NodeConfiguration
    public nonisolated let backend: any VMMBackend
    private let supervisor: Supervisor
    private let records: VMRecordStore
    private var vms: [String: VMInstance] = [:]
    private var exitsTask: Task<Void, Never>?

    private init(configuration: NodeConfiguration, backend: any VMMBackend, supervisor: Supervisor, records: VMRecordStore) {
        self.configuration = configuration
        self.backend = backend
        self.supervisor = supervisor
        self.records = records
    }

    /// Opens the node's state: loads the VM records, deletes tagged links of VMs it does not know,
    /// re-adopts VMMs that still run (control channel, events and console reconnected) and
    /// releases the host resources of those that are gone.
    public static func open(configuration given: NodeConfiguration, backend: any VMMBackend) async throws(NodeError) -> (NodeRuntime, NodeRecovery) {
        var configuration = given
        do {
            configuration.cgroupManager = try configuration.cgroups()
        } catch {
            throw .setup("cgroups: \(error)")
        }
        let supervisor: Supervisor
        let records: VMRecordStore
        do {
            try HostFiles.makeDirectories(configuration.stateDirectory, mode: 0o700)
            records = try VMRecordStore(directory: configuration.vmRecordDirectory)
            supervisor = try Supervisor(stateDirectory: configuration.supervisorDirectory)
        } catch {
            throw .setup("node state in \(configuration.stateDirectory): \(error)")
        }
        let runtime = NodeRuntime(configuration: configuration, backend: backend, supervisor: supervisor, records: records)
        let recovery = await runtime.recover()
        await runtime.consumeExits()
        return (runtime, recovery)
    }

    private func recover() async -> NodeRecovery {
        var recovery = NodeRecovery()
        let (loaded, corrupt) = await records.loadAll()
        recovery.problems += corrupt.map { "unreadable vm record \($0)" }
        do {
            let reaped = try await NetPlumbing().reap(in: configuration.networkNamespace, knownVMs: Set(loaded.map(\.id)))
            recovery.reapedLinks = reaped.map(\.name)
        } catch {
            recovery.problems.append("reap links: \(error)")
        }
        let identities = (try? SupervisorStateStore(directory: configuration.supervisorDirectory).loadAll().records) ?? []
        var controls: [String: (any VMMControl, [VMOutput])] = [:]
        var hosts: [String: PreparedHost] = [:]
        for record in loaded {
            let vm = VMInstance(id: record.id, spec: record.spec, backend: backend, configuration: configuration,
                                supervisor: supervisor, records: records)
            vms[record.id] = vm
            guard let hostRecord = record.host else { continue }
            do {
                hosts[record.id] = try PreparedHost(restoring: hostRecord, configuration: configuration)
            } catch {
                recovery.problems.append("vm '\(record.spec.name)': \(error)")
                continue
            }
            guard let identity = identities.first(where: { $0.vmID == record.id })?.identity,
                  let host = hosts[record.id] else { continue }
            let context = VMMLaunchContext(vmID: record.id, spec: record.spec, runtime: host.runtime,
                                           user: configuration.vmmUser, cgroup: host.cgroup?.placement ?? .inherit,
                                           nics: [], hugetlbfsMount: nil, seccomp: configuration.seccomp,
                                           environment: configuration.vmmEnvironment)
            if let reconnected = try? await backend.reconnect(context, process: identity) {
                controls[record.id] = (reconnected.control, reconnected.outputs)
            }
        }
        let outputs = controls.mapValues(\.1)
        let report: AdoptionReport
        let groups = hosts.compactMapValues(\.cgroup)
        let probe: @Sendable (SupervisedVM) -> Supervisor.OOMProbe? = { record in
            guard let group = groups[record.vmID] else { return nil }
            return { @Sendable in try? group.oomKillCount() ?? nil }
        }
        do throws(SupervisorError) {
            report = try await supervisor.adopt(oomProbe: probe, outputs: { record in outputs[record.vmID] ?? [] })
        } catch {
            recovery.problems.append("adopt: \(error)")
            report = AdoptionReport()
        }
        let adopted = Set(report.adopted.map(\.vmID))
        for (id, vm) in vms {
            guard let host = hosts[id] else { continue }
            if adopted.contains(id), let control = controls[id]?.0,
               let identity = report.adopted.first(where: { $0.vmID == id })?.identity {
                await vm.adopt(process: identity, control: control, host: host)
                recovery.adopted.append(id)
            } else {
                controls[id]?.0.close()
                if !(await vm.releaseOrphaned(host)).isEmpty { recovery.killed.append(id) }
                recovery.orphaned.append(id)
            }
        }
        return recovery
    }

    /// Hands every VMM exit to its VM (one consumer of the supervisor's exits).
    private func consumeExits() {
        let exits = supervisor.exits
        exitsTask = Task { [weak self] in
            for await exit in exits {
                guard let vm = await self?.vms[exit.vmID] else { continue }
                await vm.processExited(exit)
            }
        }
    }

    // MARK: - VMs

    /// Checks `spec` (the specification's own rules, the backend's, the node's path policy — all
    /// problems at once) and creates the VM in `Created`. Nothing is prepared on the host yet.
    public func create(_ spec: VMSpec) async throws(NodeError) -> VMInstance {
        var problems = spec.validate()
        problems += backend.validate(spec)
        var resolved = spec
        do {
            resolved = try configuration.pathPolicy.resolve(spec)
        } catch {
            problems += error.problems
        }
        let id = spec.id ?? spec.name
        if (try? VMRuntimeDirectory(vmID: id, root: configuration.runtimeRoot)) == nil {
            problems.append(SpecProblem(field: spec.id == nil ? "name" : "id",
                                        reason: "\"\(id)\" cannot name a vm on this node (1-64 of A-Z a-z 0-9 . _ -)"))
        }
        guard problems.isEmpty else { throw .invalidSpec(problems) }
        guard vms[id] == nil, !vms.values.contains(where: { $0.name == spec.name }) else { throw .alreadyExists(name: spec.name) }
        configuration.bootObserver?.milestone(id, .specValidated)
        let vm = VMInstance(id: id, spec: resolved, backend: backend, configuration: configuration,
                            supervisor: supervisor, records: records)
        vms[id] = vm
        do {
            try await records.write(VMRecord(id: id, spec: resolved, backend: backend.kind, host: nil))
        } catch {
            vms[id] = nil
            throw .setup("record of vm '\(spec.name)': \(error)")
        }
        return vm
    }

    /// The VM named `name` (or with that id).
    public func vm(_ name: String) throws(NodeError) -> VMInstance {
        if let vm = vms[name] { return vm }
        if let vm = vms.values.first(where: { $0.name == name }) { return vm }
        throw .notFound(name: name)
    }

    public func start(_ name: String) async throws(NodeError) { try await run(name) { vm throws(VMOperationError) in try await vm.start() } }
    public func stop(_ name: String) async throws(NodeError) { try await run(name) { vm throws(VMOperationError) in try await vm.stop() } }
    public func pause(_ name: String) async throws(NodeError) { try await run(name) { vm throws(VMOperationError) in try await vm.pause() } }
    public func resume(_ name: String) async throws(NodeError) { try await run(name) { vm throws(VMOperationError) in try await vm.resume() } }
    public func reboot(_ name: String) async throws(NodeError) { try await run(name) { vm throws(VMOperationError) in try await vm.reboot() } }
    public func powerButton(_ name: String) async throws(NodeError) {
        try await run(name) { vm throws(VMOperationError) in try await vm.powerButton() }
    }

    /// Deletes the VM (stopping it first) and forgets it.
    public func delete(_ name: String) async throws(NodeError) {
        let vm = try vm(name)
        try await run(name) { vm throws(VMOperationError) in try await vm.delete() }
        if vms[vm.id] === vm { vms[vm.id] = nil }
    }

    public func info(_ name: String) async throws(NodeError) -> VMStatus {
        await (try vm(name)).status
    }

    /// Every VM, by name.
    public func list() async -> [VMStatus] {
        var all: [VMStatus] = []
        for vm in vms.values { all.append(await vm.status) }
        return all.sorted { $0.name < $1.name }
    }

    /// Stops supervising and listening without touching any VMM: they keep running, their records
    /// stay, and the next ``open(configuration:backend:)`` re-adopts them.
    public func detach() async {
        for vm in vms.values { await vm.detach() }
        await supervisor.detachAll()
        exitsTask?.cancel()
        exitsTask = nil
        vms = [:]
    }

    private func run(_ name: String, _ body: (VMInstance) async throws(VMOperationError) -> Void) async throws(NodeError) {
        let vm = try vm(name)
        do { try await body(vm) } catch { throw .operation(error) }
    }
}
