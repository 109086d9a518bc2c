import Foundation
import GRDB

/// Serializes passes over the pending operations: a request for a pass while one runs schedules
/// exactly one more, and the caller waits until that pass is over.
actor OperationRunner {
    private var busy = false
    private var again = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// True: the caller runs the passes. False: another caller ran them, including one that started
    /// after this call.
    func begin() async -> Bool {
        if busy {
            again = true
            await withCheckedContinuation { waiters.append($0) }
            return false
        }
        busy = true
        return true
    }

    func end() -> Bool {
        if again {
            again = false
            return true
        }
        busy = false
        let done = waiters
        waiters = []
        for waiter in done { waiter.resume() }
        return false
    }
}

extension ControlService {
    /// Asks the background loop (``run()``) for a pass over pending operations.
    public func kick() {
        kicker.yield()
    }

    /// The background work of the daemon: operation passes on demand, liveness sweeps and batched
    /// flushes on a timer. Returns when the task is cancelled.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { [self] in
                for await _ in kicks { await processPendingOperations() }
            }
            group.addTask { [self] in
                while !Task.isCancelled {
                    do {
                        try await Task.sleep(for: settings.flushInterval)
                        try await sweepLiveness()
                    } catch is CancellationError {
                        return
                    } catch {
                        continue
                    }
                }
            }
            kick()
        }
    }

    /// Runs every pending operation that can run now (VM operations need their node connected).
    public func processPendingOperations() async {
        guard await runner.begin() else { return }
        repeat {
            await runPendingOnce()
        } while await runner.end()
    }

    private func runPendingOnce() async {
        let pending: [OperationRecord]
        do {
            pending = try await database.pool.read { db in
                try OperationRecord.filter(Column("status") == OperationStatus.pending.rawValue)
                    .order(Column("created_at"), Column("id")).fetchAll(db)
            }
        } catch {
            return
        }
        for op in pending {
            do {
                try await execute(op)
            } catch {
                try? await fail(op.id, error)
            }
        }
    }

    private func execute(_ op: OperationRecord) async throws {
        if op.kind == .addImage {
            try await addImage(op)
            return
        }
        guard let vmID = op.vmId,
              let vm = try await database.pool.read({ db in try VMRecord.fetchOne(db, key: vmID) }) else {
            throw ControlError.conflict(message: "the VM of this operation no longer exists", field: nil)
        }
        guard let nodeID = vm.nodeId else { return }
        guard let link = await registry.link(for: nodeID) else { return }
        // Unknown: the node's report on (re)connect settles the state first.
        let stateChange = ![.rebootVM, .addNIC, .addDisk].contains(op.kind)
        if stateChange && vm.observedState == .unknown { return }
        try await mark(op.id, .running)
        switch op.kind {
        case .rebootVM:
            _ = try await link.call(.rebootVM(id: vmID))
            try await succeed(op.id, vm: vmID)
        case .addNIC:
            if vm.observedState == .running || vm.observedState == .paused, let nic = op.request.nic {
                _ = try await link.call(.addNIC(vm: vmID, nic: nic))
            }
            try await succeed(op.id, vm: vmID)
        case .addDisk:
            if vm.observedState == .running || vm.observedState == .paused, let disk = op.request.disk {
                _ = try await link.call(.addDisk(vm: vmID, disk: disk))
            }
            try await succeed(op.id, vm: vmID)
        default:
            let observed: ObservedVMState? = vm.observedState == .pending ? nil : vm.observedState
            if let step = ReconciliationPlanner.step(vmID, desired: vm.desiredState, observed: observed) {
                try await perform(step, nodeID: nodeID)
            }
            let after = try await database.pool.read { db in try VMRecord.fetchOne(db, key: vmID) }
            let current = try await database.pool.read { db in try OperationRecord.fetchOne(db, key: op.id) }
            if let current, !current.status.isFinal {
                if let after, ReconciliationPlanner.step(vmID, desired: after.desiredState, observed: after.observedState) != nil {
                    throw ControlError.conflict(message: "node reported the VM \(after.observedState.rawValue), wanted \(after.desiredState.rawValue)",
                                                field: nil)
                }
                try await succeed(op.id, vm: vmID)
            }
        }
    }

    /// Records an operation's new status; the start of each attempt is an `operation.started` event.
    func mark(_ id: String, _ status: OperationStatus) async throws {
        try await write { db, events in
            guard var op = try OperationRecord.fetchOne(db, key: id) else { return }
            op.status = status
            op.attempts += status == .running ? 1 : 0
            op.updatedAt = Date()
            try op.update(db)
            if status == .running {
                events.append(try Self.audit(db, actor: "control", action: "operation.started", subject: .operation, id: id,
                                             message: "\(op.kind.rawValue), attempt \(op.attempts)"))
            }
        }
    }

    func succeed(_ id: String, vm: String? = nil, image: String? = nil) async throws {
        try await write { db, events in
            guard var op = try OperationRecord.fetchOne(db, key: id), !op.status.isFinal else { return }
            let now = Date()
            op.status = .succeeded
            op.progress = 1
            op.result = OperationResult(vmId: vm, imageId: image)
            op.updatedAt = now
            op.finishedAt = now
            try op.update(db)
            events.append(try Self.audit(db, actor: "control", action: "operation.succeeded", subject: .operation, id: id,
                                         message: op.kind.rawValue))
        }
    }

    func fail(_ id: String, _ error: any Error) async throws {
        let body = APIError.from(error)
        try await write { db, events in
            guard var op = try OperationRecord.fetchOne(db, key: id), !op.status.isFinal else { return }
            let now = Date()
            op.status = .failed
            op.errorCode = body.code
            op.errorMessage = body.message
            op.errorField = body.field
            op.updatedAt = now
            op.finishedAt = now
            try op.update(db)
            events.append(try Self.audit(db, actor: "control", action: "operation.failed", subject: .operation, id: id,
                                         message: "\(op.kind.rawValue): \(body.message)"))
        }
    }
}
