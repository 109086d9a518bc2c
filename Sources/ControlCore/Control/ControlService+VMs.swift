import Foundation
import GRDB
import VMModel

extension ControlService {
    // MARK: Operations and idempotency

    /// Encodes requests deterministically, so equal requests have equal digests.
    static var digestEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    /// Inserts an operation, or returns the one already accepted under `key` for the same request.
    static func submit(_ db: Database, kind: OperationKind, vm: String?, node: String?, request: OperationRequest,
                       digestOf source: Data, key: String?, status: OperationStatus = .pending)
        throws -> (operation: OperationRecord, replayed: Bool) {
        let digest = SHA256Digest.hex(Array(kind.rawValue.utf8) + [0] + Array(source))
        if let key {
            if key.isEmpty || key.utf8.count > 128 {
                throw ControlError.invalid([FieldProblem(field: "Idempotency-Key", reason: "must be 1 to 128 bytes")])
            }
            if let existing = try OperationRecord.filter(Column("client_request_id") == key).fetchOne(db) {
                guard existing.requestDigest == digest else { throw ControlError.idempotencyKeyReused(key: key) }
                return (existing, true)
            }
        }
        let now = Date()
        let op = OperationRecord(id: makeID("op"), kind: kind, status: status, vmId: vm, nodeId: node, clientRequestId: key,
                                 request: request, requestDigest: digest, result: status == .succeeded ? OperationResult(vmId: vm) : nil,
                                 errorCode: nil, errorMessage: nil, errorField: nil, progress: status == .succeeded ? 1 : 0,
                                 attempts: 0, createdAt: now, updatedAt: now, finishedAt: status.isFinal ? now : nil)
        try op.insert(db)
        return (op, false)
    }

    public func operation(_ id: String) async throws -> OperationRecord {
        guard let op = try await database.pool.read({ db in try OperationRecord.fetchOne(db, key: id) }) else {
            throw ControlError.notFound(kind: "operation", key: id)
        }
        return op
    }

    // MARK: VMs

    static func findVM(_ db: Database, _ key: String) throws -> VMRecord? {
        try VMRecord.filter(Column("id") == key || Column("name") == key).fetchOne(db)
    }

    public func vm(_ key: String) async throws -> VMRecord {
        guard let vm = try await database.pool.read({ db in try Self.findVM(db, key) }) else {
            throw ControlError.notFound(kind: "VM", key: key)
        }
        return vm
    }

    public func listVMs(_ filter: VMFilter) async throws -> Page<VMRecord> {
        guard (1...1000).contains(filter.limit) else {
            throw ControlError.invalid([FieldProblem(field: "limit", reason: "\(filter.limit) is not between 1 and 1000")])
        }
        let items = try await database.pool.read { db -> [VMRecord] in
            var query = VMRecord.all()
            if let node = filter.node {
                guard let found = try Self.findNode(db, node) else { throw ControlError.notFound(kind: "node", key: node) }
                query = query.filter(Column("node_id") == found.id)
            }
            if let state = filter.desiredState { query = query.filter(Column("desired_state") == state.rawValue) }
            if let state = filter.observedState { query = query.filter(Column("observed_state") == state.rawValue) }
            if let prefix = filter.namePrefix { query = query.filter(Column("name").like("\(Self.escapeLike(prefix))%", escape: "\\")) }
            if let token = filter.pageToken { query = query.filter(Column("name") > token) }
            return try query.order(Column("name")).limit(filter.limit + 1).fetchAll(db)
        }
        let page = Array(items.prefix(filter.limit))
        return Page(items: page, nextPageToken: items.count > filter.limit ? page.last?.name : nil)
    }

    static func escapeLike(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_")
    }

    /// Records a VM (placed on a node only when it starts, unless pinned) and, with `start`, starts it.
    public func createVM(_ body: CreateVMBody, idempotencyKey: String?) async throws -> (vm: VMRecord, operation: OperationRecord) {
        var problems = body.spec.validate().map { FieldProblem(field: "spec.\($0.field)", reason: $0.reason) }
        let nicIDs = Set(body.spec.nics.map(\.id))
        for (nic, network) in (body.networks ?? [:]).sorted(by: { $0.key < $1.key }) {
            if !nicIDs.contains(nic) { problems.append(FieldProblem(field: "networks.\(nic)", reason: "no NIC has id \"\(nic)\"")) }
            if let reason = SpecIdentifier.problem(network) { problems.append(FieldProblem(field: "networks.\(nic)", reason: reason)) }
        }
        if !problems.isEmpty { throw ControlError.invalid(problems) }
        let source = try Self.digestEncoder.encode(body)
        let start = body.start ?? false
        let (vm, op, replayed) = try await write { db, events -> (VMRecord, OperationRecord, Bool) in
            var pinned: String?
            if let node = body.node {
                guard let found = try Self.findNode(db, node) else { throw ControlError.notFound(kind: "node", key: node) }
                pinned = found.id
            }
            let id = body.spec.id ?? Self.makeID("vm")
            let probe = try Self.submit(db, kind: .createVM, vm: nil, node: nil, request: OperationRequest(vmName: body.spec.name),
                                        digestOf: source, key: idempotencyKey, status: .succeeded)
            if probe.replayed {
                let vmID = probe.operation.result?.vmId ?? probe.operation.vmId ?? ""
                guard let vm = try VMRecord.fetchOne(db, key: vmID) else {
                    throw ControlError.conflict(message: "the VM created under this idempotency key was deleted", field: nil)
                }
                return (vm, probe.operation, true)
            }
            if try Self.findVM(db, body.spec.name) != nil {
                throw ControlError.alreadyExists(kind: "VM", name: body.spec.name, field: "spec.name")
            }
            if try VMRecord.fetchOne(db, key: id) != nil {
                throw ControlError.alreadyExists(kind: "VM", name: id, field: "spec.id")
            }
            var spec = body.spec
            spec.id = id
            let now = Date()
            let vm = VMRecord(id: id, name: spec.name, spec: spec, vmm: body.vmm ?? .cloudHypervisor,
                              desiredState: .stopped, observedState: .pending, nodeId: nil, pinnedNodeId: pinned,
                              vcpus: spec.cpus.bootVCPUs, memoryBytes: spec.memory.size.bytes,
                              hugepageSize: spec.memory.hugepages ? spec.memory.effectiveHugepageSize.bytes : nil,
                              bootTimeMs: nil, createdAt: now, updatedAt: now)
            try vm.insert(db)
            for nic in spec.nics {
                let record = NICRecord(id: nil, vmId: id, deviceId: nic.id, kind: nic.kind, network: body.networks?[nic.id],
                                       mac: nic.mac, spec: nic)
                try record.insert(db)
            }
            for disk in spec.disks {
                let record = DiskRecord(id: nil, vmId: id, deviceId: disk.id, imageId: nil, path: disk.path,
                                        readonly: disk.readonly, spec: disk)
                try record.insert(db)
            }
            var op = probe.operation
            op.vmId = id
            op.result = OperationResult(vmId: id)
            try op.update(db)
            events.append(try Self.audit(db, actor: "api", action: "vm.create", subject: .vm, id: id,
                                         message: "VM \(spec.name) created (\(spec.cpus.bootVCPUs) vCPUs, \(spec.memory.size))"))
            return (vm, op, false)
        }
        if start && !replayed {
            let started = try await act(vm.id, .start, idempotencyKey: idempotencyKey.map { "\($0)#start" })
            return (try await self.vm(vm.id), started)
        }
        return (vm, op)
    }

    /// Placement candidates: every node with its capacity, allocations and liveness.
    /// Placement candidates: every node (or only `only`) with its capacity, allocations and liveness.
    func candidates(_ db: Database, alive: Set<String>, only: String? = nil) throws -> [PlacementCandidate] {
        // Small columns and aggregates only: placement cost grows with nodes, not with VMs × nodes.
        let nodeFilter = only == nil ? "" : " WHERE id = ?"
        let vmFilter = only == nil ? "" : " AND node_id = ?"
        let arguments: StatementArguments = only.map { [$0] } ?? []
        let nodes = try Row.fetchAll(db, sql: "SELECT id, name, status, maintenance FROM nodes" + nodeFilter, arguments: arguments)
        let inventories = try inventoryCache.inventories(db, ids: nodes.map { $0[0] })
        var allocated: [String: (vcpus: Int, memory: Int)] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT node_id, SUM(vcpus), SUM(CASE WHEN hugepage_size IS NULL THEN memory_bytes ELSE 0 END) FROM vms
            WHERE node_id IS NOT NULL AND desired_state IN ('running', 'paused')\(vmFilter) GROUP BY node_id
            """, arguments: arguments) {
            allocated[row[0]] = (row[1] ?? 0, row[2] ?? 0)
        }
        // Hugepages of placed VMs that have not started yet are not in the node's free count.
        var reserved: [String: [Int: Int]] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT node_id, hugepage_size, SUM((memory_bytes + hugepage_size - 1) / hugepage_size) FROM vms
            WHERE node_id IS NOT NULL AND desired_state IN ('running', 'paused')
              AND observed_state NOT IN ('running', 'paused') AND hugepage_size IS NOT NULL\(vmFilter)
            GROUP BY node_id, hugepage_size
            """, arguments: arguments) {
            reserved[row[0], default: [:]][row[1]] = row[2]
        }
        var networks: [String: Set<String>] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT node_id, name FROM networks" + (only == nil ? "" : " WHERE node_id = ?"),
                                    arguments: arguments) {
            networks[row[0], default: []].insert(row[1])
        }
        var result: [PlacementCandidate] = []
        result.reserveCapacity(nodes.count)
        for row in nodes {
            let id: String = row[0]
            let inventory = inventories[id] ?? nil
            var free: [Int: Int] = [:]
            if let inventory, !inventory.hugepages.isEmpty || reserved[id] != nil {
                for pool in inventory.hugepages { free[pool.pageSize, default: 0] += pool.free }
                for (size, pages) in reserved[id] ?? [:] { free[size, default: 0] -= pages }
            }
            let recorded: NodeStatus = row[2]
            let maintenance: Bool = row[3]
            let status: NodeStatus = maintenance ? .maintenance : (alive.contains(id) ? .up : (recorded == .up ? .down : recorded))
            result.append(PlacementCandidate(
                id: id, name: row[1], status: status, cpus: inventory?.cpus ?? 0,
                memoryBytes: inventory?.memoryBytes ?? 0, freeHugepages: free,
                vmms: inventory?.backends ?? [],
                networks: networks[id] ?? [],
                kvm: inventory?.kvm ?? false,
                allocatedVCPUs: allocated[id]?.vcpus ?? 0,
                allocatedMemoryBytes: allocated[id]?.memory ?? 0))
        }
        return result
    }

    /// Chooses a node off the serial writer, from a snapshot of every node's capacity that is
    /// read again at most every ``PlacementSnapshot/maxAge`` and charged in memory with each choice
    /// made from it (so successive choices spread). The write transaction then re-checks the chosen
    /// node against the database, and chooses among all nodes there if it no longer fits.
    private func preselect(_ key: String, alive: Set<String>, policy: PlacementPolicy) async throws -> String? {
        let snapshot = placementSnapshot
        return try await database.pool.read { [self] db in
            guard let vm = try Self.findVM(db, key), vm.nodeId == nil else { return nil }
            let request = try Self.placementRequest(db, vm: vm)
            return try snapshot.choose(for: request, policy: policy) { try candidates(db, alive: alive) }
        }
    }

    static func placementRequest(_ db: Database, vm: VMRecord) throws -> PlacementRequest {
        PlacementRequest(
            vcpus: vm.vcpus, memoryBytes: vm.memoryBytes, hugepageSize: vm.hugepageSize, vmm: vm.vmm,
            networks: Set(try NICRecord.filter(Column("vm_id") == vm.id).fetchAll(db).compactMap(\.network)),
            pinnedNode: vm.pinnedNodeId)
    }

    /// start / stop / pause / resume / reboot: records the desired state and an operation the
    /// VM's node carries out. Starting an unplaced VM places it first.
    public func act(_ key: String, _ action: VMAction, idempotencyKey: String?) async throws -> OperationRecord {
        let alive = await registry.aliveNodes
        let policy = settings.placement
        let preselected = action == .start ? try await preselect(key, alive: alive, policy: policy) : nil
        let op = try await write { [self] db, events -> OperationRecord in
            guard var vm = try Self.findVM(db, key) else { throw ControlError.notFound(kind: "VM", key: key) }
            let source = Data("\(vm.id)".utf8)
            if let key = idempotencyKey, let existing = try OperationRecord.filter(Column("client_request_id") == key).fetchOne(db) {
                return try Self.submit(db, kind: action.operation, vm: vm.id, node: existing.nodeId, request: existing.request,
                                       digestOf: source, key: key).operation
            }
            if vm.desiredState == .deleted { throw ControlError.conflict(message: "VM \(vm.name) is being deleted", field: nil) }
            let active = vm.observedState == .running || vm.observedState == .paused
            var immediate = false
            switch action {
            case .start:
                if vm.nodeId == nil {
                    let request = try Self.placementRequest(db, vm: vm)
                    let chosen: PlacementCandidate
                    do {
                        // The snapshot's choice still fits (nothing was placed there since), or
                        // choose again among all nodes, now inside the transaction.
                        if let preselected, let candidate = try candidates(db, alive: alive, only: preselected).first,
                           Placement.rejections(of: candidate, for: request, policy: policy).isEmpty {
                            chosen = candidate
                        } else {
                            chosen = try Placement.choose(for: request, among: try candidates(db, alive: alive), policy: policy)
                        }
                    } catch let failure as PlacementFailure {
                        throw ControlError.noPlacement(failure)
                    }
                    vm.nodeId = chosen.id
                    vm.spec = try Self.bindNetworks(db, vm: vm, node: chosen.id)
                    events.append(try Self.audit(db, actor: "control", action: "vm.place", subject: .vm, id: vm.id,
                                                 message: "VM \(vm.name) placed on \(chosen.name)"))
                }
                immediate = vm.observedState == .running
                vm.desiredState = .running
            case .stop:
                immediate = vm.nodeId == nil || [.stopped, .created, .failed].contains(vm.observedState)
                vm.desiredState = .stopped
            case .pause:
                guard active else { throw ControlError.conflict(message: "VM \(vm.name) is not running (\(vm.observedState.rawValue))", field: nil) }
                immediate = vm.observedState == .paused
                vm.desiredState = .paused
            case .resume:
                guard active else { throw ControlError.conflict(message: "VM \(vm.name) is not running (\(vm.observedState.rawValue))", field: nil) }
                immediate = vm.observedState == .running
                vm.desiredState = .running
            case .reboot:
                guard vm.observedState == .running else {
                    throw ControlError.conflict(message: "VM \(vm.name) is not running (\(vm.observedState.rawValue))", field: nil)
                }
            }
            vm.updatedAt = Date()
            try vm.update(db)
            let op = try Self.submit(db, kind: action.operation, vm: vm.id, node: vm.nodeId, request: OperationRequest(vmName: vm.name),
                                     digestOf: source, key: idempotencyKey, status: immediate ? .succeeded : .pending).operation
            events.append(try Self.audit(db, actor: "api", action: "vm.\(action.rawValue)", subject: .vm, id: vm.id,
                                         message: "\(action.rawValue) VM \(vm.name) (operation \(op.id))"))
            return op
        }
        kick()
        return op
    }

    /// Fills in each NIC's bridge or MACVTAP parent and MTU from the networks on `node`.
    static func bindNetworks(_ db: Database, vm: VMRecord, node: String) throws -> VMSpec {
        var spec = vm.spec
        let nics = try NICRecord.filter(Column("vm_id") == vm.id).fetchAll(db)
        for (index, nic) in spec.nics.enumerated() {
            guard let name = nics.first(where: { $0.deviceId == nic.id })?.network,
                  let network = try NetworkRecord.filter(Column("name") == name && Column("node_id") == node).fetchOne(db)
            else { continue }
            switch network.kind {
            case .bridge: spec.nics[index].bridge = network.parent
            case .macvtap: spec.nics[index].parent = network.parent
            }
            if spec.nics[index].mtu == nil { spec.nics[index].mtu = network.mtu }
        }
        return spec
    }

    /// Deletes a VM: at once when it is on no node, else once its node has removed it.
    public func deleteVM(_ key: String, idempotencyKey: String?) async throws -> OperationRecord {
        let op = try await write { db, events -> OperationRecord in
            guard var vm = try Self.findVM(db, key) else {
                if let idempotencyKey, let existing = try OperationRecord.filter(Column("client_request_id") == idempotencyKey).fetchOne(db) {
                    return existing
                }
                throw ControlError.notFound(kind: "VM", key: key)
            }
            let onNode = vm.nodeId != nil
            let op = try Self.submit(db, kind: .deleteVM, vm: vm.id, node: vm.nodeId, request: OperationRequest(vmName: vm.name),
                                     digestOf: Data(vm.id.utf8), key: idempotencyKey, status: onNode ? .pending : .succeeded)
            if op.replayed { return op.operation }
            events.append(try Self.audit(db, actor: "api", action: "vm.delete", subject: .vm, id: vm.id, message: "delete VM \(vm.name)"))
            if onNode {
                vm.desiredState = .deleted
                vm.updatedAt = Date()
                try vm.update(db)
            } else {
                _ = try vm.delete(db)
            }
            return op.operation
        }
        kick()
        return op
    }

    /// Adds a NIC to the VM's specification; hot-plugs it when the VM runs.
    public func addNIC(_ key: String, _ body: AddNICBody, idempotencyKey: String?) async throws -> OperationRecord {
        try await addDevice(key, idempotencyKey: idempotencyKey, kind: .addNIC, source: try Self.digestEncoder.encode(body),
                            request: OperationRequest(nic: body.nic, network: body.network)) { db, vm in
            var spec = vm.spec
            if spec.nics.contains(where: { $0.id == body.nic.id }) {
                throw ControlError.alreadyExists(kind: "NIC", name: body.nic.id, field: "nic.id")
            }
            spec.nics.append(body.nic)
            let index = spec.nics.count - 1
            let problems = spec.validate().compactMap { problem -> FieldProblem? in
                let prefix = "nics[\(index)]"
                guard problem.field.hasPrefix(prefix) else { return nil }
                return FieldProblem(field: "nic" + problem.field.dropFirst(prefix.count), reason: problem.reason)
            }
            if !problems.isEmpty { throw ControlError.invalid(problems) }
            let record = NICRecord(id: nil, vmId: vm.id, deviceId: body.nic.id, kind: body.nic.kind, network: body.network,
                                   mac: body.nic.mac, spec: body.nic)
            try record.insert(db)
            return spec
        }
    }

    /// Adds a disk to the VM's specification; hot-plugs it when the VM runs.
    public func addDisk(_ key: String, _ body: AddDiskBody, idempotencyKey: String?) async throws -> OperationRecord {
        try await addDevice(key, idempotencyKey: idempotencyKey, kind: .addDisk, source: try Self.digestEncoder.encode(body),
                            request: OperationRequest(disk: body.disk)) { db, vm in
            var disk = body.disk
            var imageID: String?
            if let image = body.image {
                guard let found = try ImageRecord.filter(Column("id") == image || Column("name") == image).fetchOne(db) else {
                    throw ControlError.notFound(kind: "image", key: image)
                }
                guard found.kind == .disk else {
                    throw ControlError.invalid([FieldProblem(field: "image", reason: "image \(found.name) is a \(found.kind.rawValue), not a disk")])
                }
                disk.path = found.path
                imageID = found.id
            }
            var spec = vm.spec
            if spec.disks.contains(where: { $0.id == disk.id }) {
                throw ControlError.alreadyExists(kind: "disk", name: disk.id, field: "disk.id")
            }
            spec.disks.append(disk)
            let index = spec.disks.count - 1
            let problems = spec.validate().compactMap { problem -> FieldProblem? in
                let prefix = "disks[\(index)]"
                guard problem.field.hasPrefix(prefix) else { return nil }
                return FieldProblem(field: "disk" + problem.field.dropFirst(prefix.count), reason: problem.reason)
            }
            if !problems.isEmpty { throw ControlError.invalid(problems) }
            let record = DiskRecord(id: nil, vmId: vm.id, deviceId: disk.id, imageId: imageID, path: disk.path,
                                    readonly: disk.readonly, spec: disk)
            try record.insert(db)
            return spec
        }
    }

    private func addDevice(_ key: String, idempotencyKey: String?, kind: OperationKind, source: Data, request: OperationRequest,
                           change: @escaping @Sendable (Database, VMRecord) throws -> VMSpec) async throws -> OperationRecord {
        let op = try await write { db, events -> OperationRecord in
            guard var vm = try Self.findVM(db, key) else { throw ControlError.notFound(kind: "VM", key: key) }
            if let idempotencyKey, try OperationRecord.filter(Column("client_request_id") == idempotencyKey).fetchOne(db) != nil {
                return try Self.submit(db, kind: kind, vm: vm.id, node: vm.nodeId, request: request, digestOf: source,
                                       key: idempotencyKey).operation
            }
            if vm.desiredState == .deleted { throw ControlError.conflict(message: "VM \(vm.name) is being deleted", field: nil) }
            vm.spec = try change(db, vm)
            vm.updatedAt = Date()
            try vm.update(db)
            let live = vm.observedState == .running || vm.observedState == .paused
            let op = try Self.submit(db, kind: kind, vm: vm.id, node: vm.nodeId, request: request, digestOf: source,
                                     key: idempotencyKey, status: live ? .pending : .succeeded).operation
            events.append(try Self.audit(db, actor: "api", action: "vm.\(kind.rawValue)", subject: .vm, id: vm.id,
                                         message: "\(kind.rawValue) on VM \(vm.name)\(live ? " (hotplug)" : "")"))
            return op
        }
        kick()
        return op
    }

    /// The last `maxBytes` of the VM's serial console, from its node.
    public func consoleTail(_ key: String, maxBytes: Int) async throws -> [UInt8] {
        guard (1...(1 << 20)).contains(maxBytes) else {
            throw ControlError.invalid([FieldProblem(field: "bytes", reason: "\(maxBytes) is not between 1 and 1048576")])
        }
        let vm = try await vm(key)
        guard let nodeID = vm.nodeId else {
            throw ControlError.conflict(message: "VM \(vm.name) has not been started on any node", field: nil)
        }
        guard let link = await registry.link(for: nodeID) else { throw ControlError.nodeUnavailable(node: nodeID) }
        do {
            if case .console(let bytes) = try await link.call(.consoleTail(vm: vm.id, maxBytes: maxBytes)) { return bytes }
            return []
        } catch let error as NodeCallError {
            throw ControlError.nodeFailed(error)
        }
    }
}
