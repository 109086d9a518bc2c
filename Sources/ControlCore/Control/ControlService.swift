import Foundation
import GRDB
import VMModel

/// Settings of the control logic.
public struct ControlSettings: Sendable {
    public var placement: PlacementPolicy
    /// A node is DOWN after this long without a heartbeat.
    public var heartbeatGrace: Duration
    /// How often liveness changes are written to the inventory.
    public var flushInterval: Duration

    public init(placement: PlacementPolicy = PlacementPolicy(), heartbeatGrace: Duration = .seconds(15),
                flushInterval: Duration = .seconds(2)) {
        self.placement = placement
        self.heartbeatGrace = heartbeatGrace
        self.flushInterval = flushInterval
    }
}

/// A page of a listing and the token for the next page (nil on the last one).
public struct Page<Item: Codable & Sendable>: Codable, Sendable {
    public var items: [Item]
    public var nextPageToken: String?
}

/// Filters of `GET /v1/vms`.
public struct VMFilter: Sendable, Hashable {
    public var node: String?
    public var desiredState: DesiredVMState?
    public var observedState: ObservedVMState?
    public var namePrefix: String?
    public var limit: Int
    /// The last name of the previous page.
    public var pageToken: String?

    public init(node: String? = nil, desiredState: DesiredVMState? = nil, observedState: ObservedVMState? = nil,
                namePrefix: String? = nil, limit: Int = 100, pageToken: String? = nil) {
        self.node = node
        self.desiredState = desiredState
        self.observedState = observedState
        self.namePrefix = namePrefix
        self.limit = limit
        self.pageToken = pageToken
    }
}

/// An action on a VM through `/v1/vms/{id}/<action>`.
public enum VMAction: String, Sendable, CaseIterable {
    case start, stop, pause, resume, reboot

    var operation: OperationKind {
        switch self {
        case .start: .startVM
        case .stop: .stopVM
        case .pause: .pauseVM
        case .resume: .resumeVM
        case .reboot: .rebootVM
        }
    }
}

/// The control daemon's logic: inventory changes, placement, operations and reconciliation. The
/// REST API and the node listener call it; it owns no sockets.
public final class ControlService: Sendable {
    public let database: InventoryDatabase
    public let registry: NodeRegistry
    public let events: EventBus
    public let settings: ControlSettings
    /// Node event lag: from the node writing an event to ``serve(link:)`` taking it up.
    public let eventLag = LatencyHistogram()
    let inventoryCache = NodeInventoryCache()
    let placementSnapshot = PlacementSnapshot()
    let runner: OperationRunner
    let kicks: AsyncStream<Void>
    let kicker: AsyncStream<Void>.Continuation
    private var pool: DatabasePool { database.pool }

    public init(database: InventoryDatabase, settings: ControlSettings = ControlSettings(), clock: ControlClock = .system) {
        self.database = database
        self.settings = settings
        registry = NodeRegistry(grace: settings.heartbeatGrace, clock: clock)
        events = EventBus()
        runner = OperationRunner()
        (kicks, kicker) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: Startup

    /// After a restart: nodes are UNKNOWN until they reconnect, VM states unknown; operations that
    /// were handed to a node fail (their outcome is unknown, the desired state stays and is
    /// reconciled when the node reconnects); operations the daemon runs itself are resumed.
    public func recoverAfterStart() async throws {
        let recorded = try await pool.write { db -> [EventRecord] in
            let now = Date()
            try db.execute(sql: "UPDATE nodes SET status = CASE WHEN maintenance THEN 'MAINTENANCE' ELSE 'UNKNOWN' END")
            try db.execute(sql: "UPDATE vms SET observed_state = 'unknown' WHERE node_id IS NOT NULL AND observed_state <> 'pending'")
            let interrupted = try OperationRecord.filter(Column("status") == OperationStatus.running.rawValue).fetchAll(db)
            var events: [EventRecord] = []
            for var op in interrupted {
                if op.kind == .addImage {
                    op.status = .pending
                    op.progress = 0
                } else {
                    op.status = .failed
                    op.errorCode = "interrupted"
                    op.errorMessage = "the control daemon restarted while the node was carrying this out; "
                        + "the VM's desired state is kept and reconciled when its node reconnects"
                    op.finishedAt = now
                }
                op.updatedAt = now
                try op.update(db)
                events.append(try Self.audit(db, actor: "control", action: "operation.\(op.status == .failed ? "failed" : "resumed")",
                                             subject: .operation, id: op.id, message: "\(op.kind.rawValue) after restart"))
            }
            events.append(try Self.audit(db, actor: "control", action: "control.start", subject: .control, id: nil,
                                         message: "control daemon started"))
            return events
        }
        events.publish(recorded)
    }

    // MARK: Audit

    static func audit(_ db: Database, actor: String, action: String, subject: EventSubject, id: String?,
                      message: String) throws -> EventRecord {
        try EventRecord(seq: nil, at: Date(), actor: actor, action: action, subject: subject, subjectId: id, message: message)
            .inserted(db)
    }

    /// Runs `body` in a write transaction and publishes the events it recorded once committed and
    /// on disk (returning means the change survives a crash or a power cut).
    func write<T: Sendable>(_ body: @escaping @Sendable (Database, inout [EventRecord]) throws -> T) async throws -> T {
        let (value, recorded) = try await pool.write { db -> (T, [EventRecord]) in
            var recorded: [EventRecord] = []
            let value = try body(db, &recorded)
            return (value, recorded)
        }
        try await database.durability.flush()
        events.publish(recorded)
        return value
    }

    static func makeID(_ prefix: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = (0..<4).map { _ in
            let word = String(UInt16.random(in: 0...UInt16.max, using: &generator), radix: 16)
            return String(repeating: "0", count: 4 - word.count) + word
        }.joined()
        return "\(prefix)-\(hex)"
    }

    static func checkName(_ name: String, field: String) throws(ControlError) {
        if let reason = SpecIdentifier.problem(name) { throw .invalid([FieldProblem(field: field, reason: reason)]) }
    }

    // MARK: Nodes

    /// Every node, with liveness from memory.
    public func listNodes() async throws -> [NodeRecord] {
        let nodes = try await pool.read { db in try NodeRecord.order(Column("name")).fetchAll(db) }
        var result: [NodeRecord] = []
        for node in nodes { result.append(await overlay(node)) }
        return result
    }

    public func node(_ key: String) async throws -> NodeRecord {
        let found = try await pool.read { db in try Self.findNode(db, key) }
        guard let found else { throw ControlError.notFound(kind: "node", key: key) }
        return await overlay(found)
    }

    private func overlay(_ node: NodeRecord) async -> NodeRecord {
        var node = node
        let alive = await registry.isAlive(node.id)
        if let seen = await registry.lastHeard(node.id), seen > node.lastSeen ?? .distantPast { node.lastSeen = seen }
        if node.maintenance {
            node.status = .maintenance
        } else if alive {
            node.status = .up
        } else if node.status == .up {
            node.status = .down
        }
        return node
    }

    static func findNode(_ db: Database, _ key: String) throws -> NodeRecord? {
        try NodeRecord.filter(Column("id") == key || Column("name") == key).fetchOne(db)
    }

    /// Declares a node by name and address before it connects (status UNKNOWN).
    public func registerNode(_ body: RegisterNodeBody) async throws -> NodeRecord {
        try Self.checkName(body.name, field: "name")
        if body.address.isEmpty { throw ControlError.invalid([FieldProblem(field: "address", reason: "is empty")]) }
        return try await write { db, events in
            if try Self.findNode(db, body.name) != nil {
                throw ControlError.alreadyExists(kind: "node", name: body.name, field: "name")
            }
            let node = NodeRecord(id: Self.makeID("node"), name: body.name, address: body.address, status: .unknown,
                                  maintenance: false, inventory: nil, nodeVersion: "", protocolVersion: 0,
                                  lastSeen: nil, createdAt: Date())
            try node.insert(db)
            events.append(try Self.audit(db, actor: "api", action: "node.register", subject: .node, id: node.id,
                                         message: "node \(node.name) registered at \(node.address)"))
            return node
        }
    }

    /// Enters or leaves maintenance: a node in maintenance takes no new VMs; its VMs keep running.
    public func setMaintenance(_ key: String, enabled: Bool) async throws -> NodeRecord {
        guard let existing = try await pool.read({ db in try Self.findNode(db, key) }) else {
            throw ControlError.notFound(kind: "node", key: key)
        }
        let isAlive = await registry.isAlive(existing.id)
        let updated = try await write { db, events in
            guard var node = try NodeRecord.fetchOne(db, key: existing.id) else {
                throw ControlError.notFound(kind: "node", key: key)
            }
            node.maintenance = enabled
            node.status = enabled ? .maintenance : (isAlive ? .up : (node.lastSeen == nil ? .unknown : .down))
            try node.update(db)
            events.append(try Self.audit(db, actor: "api", action: enabled ? "node.maintenance.enter" : "node.maintenance.leave",
                                         subject: .node, id: node.id, message: "node \(node.name) maintenance \(enabled ? "on" : "off")"))
            return node
        }
        return await overlay(updated)
    }

    /// Persists the liveness changes accumulated in memory, in one transaction.
    public func flushLiveness() async throws {
        let changes = await registry.takeDirty()
        if changes.isEmpty { return }
        do {
            try await write { db, events in
                for change in changes {
                    guard let status = change.status else {
                        // Only last_seen moved: one small update, no record decoding.
                        try db.execute(sql: "UPDATE nodes SET last_seen = ? WHERE id = ?", arguments: [change.lastSeen, change.nodeID])
                        continue
                    }
                    guard var node = try NodeRecord.fetchOne(db, key: change.nodeID) else { continue }
                    node.lastSeen = change.lastSeen
                    if !node.maintenance, node.status != status {
                        node.status = status
                        events.append(try Self.audit(db, actor: "control", action: "node.\(status == .up ? "up" : "down")",
                                                     subject: .node, id: node.id, message: "node \(node.name) is \(status.rawValue)"))
                        if status == .down {
                            try db.execute(sql: "UPDATE vms SET observed_state = 'unknown' WHERE node_id = ? AND observed_state <> 'pending'",
                                           arguments: [node.id])
                        }
                    }
                    try node.update(db)
                }
            }
        } catch {
            await registry.restore(changes)
            throw error
        }
    }

    /// Checks heartbeats against the grace period and flushes what changed.
    public func sweepLiveness() async throws {
        await registry.sweep()
        try await flushLiveness()
    }

    // MARK: Node links

    /// Serves one connected node for the lifetime of its link: registers it, reconciles its VMs
    /// against its report, then follows its events until the link closes.
    public func serve(link: any NodeLink) async throws {
        let hello = link.hello
        try Self.checkName(hello.name, field: "name")
        let node = try await write { db, events -> NodeRecord in
            let now = Date()
            var node = try Self.findNode(db, hello.name) ?? NodeRecord(
                id: Self.makeID("node"), name: hello.name, address: hello.address, status: .unknown, maintenance: false,
                inventory: nil, nodeVersion: "", protocolVersion: 0, lastSeen: nil, createdAt: now)
            node.address = hello.address
            node.inventory = hello.inventory
            node.nodeVersion = hello.inventory.nodeVersion
            node.protocolVersion = hello.protocolVersion
            node.lastSeen = now
            node.status = node.maintenance ? .maintenance : .up
            try node.save(db)
            self.inventoryCache.invalidate(node.id)
            events.append(try Self.audit(db, actor: "node:\(node.name)", action: "node.connect", subject: .node, id: node.id,
                                         message: "node \(node.name) connected from \(hello.address) reporting \(hello.vms.count) VMs"))
            return node
        }
        let generation = await registry.attach(node.id, link: link)
        let registry = self.registry
        let nodeID = node.id
        await link.routeLiveness { registry.heard(nodeID) }
        do {
            try await reconcile(nodeID: node.id, reported: hello.vms)
            await processPendingOperations()
            for await event in link.events {
                try await handle(event, from: node)
            }
        } catch {
            await registry.detach(node.id, generation: generation)
            if !Task.isCancelled { try? await flushLiveness() }
            throw error
        }
        await registry.detach(node.id, generation: generation)
        // On shutdown (cancelled) there is nothing to persist: a restarted daemon starts every
        // node as UNKNOWN until it reconnects.
        if !Task.isCancelled { try await flushLiveness() }
    }

    private func handle(_ event: NodeEvent, from node: NodeRecord) async throws {
        await registry.heartbeat(node.id)
        switch event {
        case .heartbeat:
            break
        case .vmState(let vm, let state):
            try await recordObserved(vm: vm, state: state, node: node)
        case .bootTime(let vm, let milliseconds):
            try await write { db, events in
                try db.execute(sql: "UPDATE vms SET boot_time_ms = ?, updated_at = ? WHERE id = ?",
                               arguments: [milliseconds, Date(), vm])
                events.append(try Self.audit(db, actor: "node:\(node.name)", action: "vm.boot_time", subject: .vm, id: vm,
                                             message: "booted in \(milliseconds) ms"))
            }
        case .inventory(let inventory):
            let json = String(decoding: try JSONEncoder().encode(inventory), as: UTF8.self)
            let cache = inventoryCache
            try await database.pool.write { db in
                try db.execute(sql: "UPDATE nodes SET inventory = ? WHERE id = ?", arguments: [json, node.id])
                cache.invalidate(node.id)
            }
        }
    }

    private func recordObserved(vm: String, state: ObservedVMState, node: NodeRecord) async throws {
        try await write { db, events in
            guard var record = try VMRecord.fetchOne(db, key: vm), record.observedState != state else { return }
            record.observedState = state
            record.updatedAt = Date()
            try record.update(db)
            events.append(try Self.audit(db, actor: "node:\(node.name)", action: "vm.state", subject: .vm, id: vm,
                                         message: "VM \(record.name) is \(state.rawValue)"))
        }
    }

    /// Brings a node's VMs to their desired state given what it reported.
    public func reconcile(nodeID: String, reported: [ReportedVM]) async throws {
        let desired = try await pool.read { db in
            try VMRecord.filter(Column("node_id") == nodeID).fetchAll(db).map { DesiredVM(id: $0.id, state: $0.desiredState) }
        }
        let reportedIDs = Set(reported.map(\.id))
        for vm in desired where !reportedIDs.contains(vm.id) && vm.state == .stopped {
            try await setObserved(vm.id, .stopped)
        }
        for action in ReconciliationPlanner.plan(desired: desired, reported: reported) {
            do {
                try await perform(action, nodeID: nodeID)
            } catch {
                try await write { db, events in
                    events.append(try Self.audit(db, actor: "control", action: "reconcile.failed", subject: .node, id: nodeID,
                                                 message: "\(action): \(ControlError.describe(error))"))
                }
            }
        }
    }

    /// Carries out one reconciliation step on the node and records the outcome.
    func perform(_ action: ReconcileAction, nodeID: String) async throws {
        switch action {
        case .record(let vm, let state):
            try await setObserved(vm, state)
        case .orphan(let vm, let state):
            try await write { db, events in
                events.append(try Self.audit(db, actor: "control", action: "vm.orphan", subject: .node, id: nodeID,
                                             message: "node runs unknown VM \(vm) (\(state.rawValue)); left alone"))
            }
        case .forget(let vm):
            try await write { db, events in
                try Self.finishOperations(db, vm: vm, kinds: [.deleteVM])
                _ = try VMRecord.deleteOne(db, key: vm)
                events.append(try Self.audit(db, actor: "control", action: "vm.deleted", subject: .vm, id: vm, message: "VM removed"))
            }
        case .createAndStart(let vm), .start(let vm), .stop(let vm), .pause(let vm), .resume(let vm), .delete(let vm):
            guard let link = await registry.link(for: nodeID) else { throw ControlError.nodeUnavailable(node: nodeID) }
            guard let record = try await pool.read({ db in try VMRecord.fetchOne(db, key: vm) }) else { return }
            let requests: [NodeRequest] = switch action {
            case .createAndStart: [.createVM(id: vm, spec: record.spec, vmm: record.vmm), .startVM(id: vm)]
            case .start: [.startVM(id: vm)]
            case .stop: [.stopVM(id: vm)]
            case .pause: [.pauseVM(id: vm)]
            case .resume: [.resumeVM(id: vm)]
            default: [.deleteVM(id: vm)]
            }
            var last: ObservedVMState?
            for request in requests {
                if case .done(let state) = try await link.call(request) { last = state }
            }
            if case .delete = action {
                try await perform(.forget(vm: vm), nodeID: nodeID)
            } else if let last {
                try await setObserved(vm, last)
            }
        }
    }

    private func setObserved(_ vm: String, _ state: ObservedVMState) async throws {
        try await write { db, events in
            guard var record = try VMRecord.fetchOne(db, key: vm) else { return }
            if record.observedState != state {
                record.observedState = state
                record.updatedAt = Date()
                try record.update(db)
                events.append(try Self.audit(db, actor: "control", action: "vm.state", subject: .vm, id: vm,
                                             message: "VM \(record.name) is \(state.rawValue)"))
            }
            try Self.finishOperations(db, vm: vm, observed: state, desired: record.desiredState)
        }
    }

    /// Marks the VM's open state operations succeeded once the VM reached their goal.
    static func finishOperations(_ db: Database, vm: String, observed: ObservedVMState, desired: DesiredVMState) throws {
        let reached: [OperationKind] = switch (observed, desired) {
        case (.running, .running): [.startVM, .resumeVM, .createVM]
        case (.paused, .paused): [.pauseVM]
        case (.stopped, .stopped), (.created, .stopped): [.stopVM]
        default: []
        }
        try finishOperations(db, vm: vm, kinds: reached)
    }

    static func finishOperations(_ db: Database, vm: String, kinds: [OperationKind]) throws {
        guard !kinds.isEmpty else { return }
        let open = try OperationRecord
            .filter(Column("vm_id") == vm && kinds.map(\.rawValue).contains(Column("kind"))
                    && [OperationStatus.pending.rawValue, OperationStatus.running.rawValue].contains(Column("status")))
            .fetchAll(db)
        let now = Date()
        for var op in open {
            op.status = .succeeded
            op.progress = 1
            op.updatedAt = now
            op.finishedAt = now
            op.result = OperationResult(vmId: vm)
            try op.update(db)
        }
    }
}

extension ControlError {
    static func describe(_ error: any Error) -> String {
        if let error = error as? ControlError { return error.description }
        if let error = error as? NodeCallError { return error.description }
        return String(describing: error)
    }
}
