import Foundation
import GRDB
import VMModel

extension ControlService {
    // MARK: Images

    /// Accepts an image: the daemon measures the file's size and SHA-256 in the background.
    public func addImage(_ body: ImageAddRequest, idempotencyKey: String?) async throws -> OperationRecord {
        var problems: [FieldProblem] = []
        if let reason = SpecIdentifier.problem(body.name) { problems.append(FieldProblem(field: "name", reason: reason)) }
        if let reason = SpecPath.problem(body.path) { problems.append(FieldProblem(field: "path", reason: reason)) }
        if let sha = body.sha256, sha.count != 64 || !sha.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) {
            problems.append(FieldProblem(field: "sha256", reason: "\"\(sha)\" is not 64 lowercase hex digits"))
        }
        if !problems.isEmpty { throw ControlError.invalid(problems) }
        let source = try Self.digestEncoder.encode(body)
        let op = try await write { db, events -> OperationRecord in
            if let key = idempotencyKey, try OperationRecord.filter(Column("client_request_id") == key).fetchOne(db) != nil {
                return try Self.submit(db, kind: .addImage, vm: nil, node: nil, request: OperationRequest(image: body),
                                       digestOf: source, key: key).operation
            }
            if try ImageRecord.filter(Column("name") == body.name).fetchCount(db) > 0 {
                throw ControlError.alreadyExists(kind: "image", name: body.name, field: "name")
            }
            for (index, node) in (body.nodes ?? []).enumerated() where try Self.findNode(db, node) == nil {
                throw ControlError.invalid([FieldProblem(field: "nodes[\(index)]", reason: "node \"\(node)\" does not exist")])
            }
            let op = try Self.submit(db, kind: .addImage, vm: nil, node: nil, request: OperationRequest(image: body),
                                     digestOf: source, key: idempotencyKey).operation
            events.append(try Self.audit(db, actor: "api", action: "image.add", subject: .image, id: nil,
                                         message: "image \(body.name) (\(body.kind.rawValue)) from \(body.path)"))
            return op
        }
        kick()
        return op
    }

    /// Measures the image file on a dedicated thread (blocking reads), then records it.
    func addImage(_ op: OperationRecord) async throws {
        guard let body = op.request.image else {
            throw ControlError.malformed(FieldProblem(field: "request.image", reason: "is missing"))
        }
        try await mark(op.id, .running)
        let pool = database.pool
        let opID = op.id
        let (size, digest) = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(Int, String), any Error>) in
            let thread = Thread {
                continuation.resume(with: Result { try Self.measure(path: body.path) { progress in
                    try? pool.write { db in
                        try db.execute(sql: "UPDATE operations SET progress = ?, updated_at = ? WHERE id = ?",
                                       arguments: [progress, Date(), opID])
                    }
                } })
            }
            thread.name = "qarax-image-hash"
            thread.start()
        }
        if let expected = body.sha256, expected != digest {
            throw ControlError.invalid([FieldProblem(field: "sha256", reason: "the file's SHA-256 is \(digest), not \(expected)")])
        }
        let imageID = Self.makeID("img")
        try await write { db, events in
            if try ImageRecord.filter(Column("name") == body.name).fetchCount(db) > 0 {
                throw ControlError.alreadyExists(kind: "image", name: body.name, field: "name")
            }
            let image = ImageRecord(id: imageID, name: body.name, kind: body.kind, path: body.path, sizeBytes: size,
                                    sha256: digest, createdAt: Date())
            try image.insert(db)
            let nodes = try body.nodes.map { keys in try keys.compactMap { try Self.findNode(db, $0) } } ?? NodeRecord.fetchAll(db)
            for node in nodes { try ImageNodeRecord(imageId: imageID, nodeId: node.id).insert(db) }
            events.append(try Self.audit(db, actor: "control", action: "image.ready", subject: .image, id: imageID,
                                         message: "image \(body.name): \(size) bytes, sha256 \(digest)"))
        }
        try await succeed(op.id, image: imageID)
    }

    static func measure(path: String, progress: (Double) -> Void) throws -> (Int, String) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ControlError.invalid([FieldProblem(field: "path", reason: "\(path) cannot be opened for reading")])
        }
        defer { try? handle.close() }
        let total = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        var digest = SHA256Digest()
        var size = 0
        var lastReport = 0
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            digest.update(chunk)
            size += chunk.count
            if total > 0, size - lastReport >= 8 << 20 {
                lastReport = size
                progress(min(0.99, Double(size) / Double(total)))
            }
        }
        return (size, digest.finalizeHex())
    }

    /// An image with the nodes that have it.
    public struct ImageView: Codable, Sendable {
        public var image: ImageRecord
        public var nodes: [String]
    }

    public func listImages() async throws -> [ImageView] {
        try await database.pool.read { db in
            let links = try ImageNodeRecord.fetchAll(db)
            let names = Dictionary(try NodeRecord.fetchAll(db).map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
            return try ImageRecord.order(Column("name")).fetchAll(db).map { image in
                ImageView(image: image, nodes: links.filter { $0.imageId == image.id }.compactMap { names[$0.nodeId] }.sorted())
            }
        }
    }

    // MARK: Networks

    public func createNetwork(_ body: CreateNetworkBody) async throws -> NetworkRecord {
        var problems: [FieldProblem] = []
        if let reason = SpecIdentifier.problem(body.name) { problems.append(FieldProblem(field: "name", reason: reason)) }
        if let reason = InterfaceNameRule.problem(body.parent) { problems.append(FieldProblem(field: "parent", reason: reason)) }
        if let mtu = body.mtu, !VMSpecLimits.mtuRange.contains(mtu) {
            problems.append(FieldProblem(field: "mtu", reason: "\(mtu) is not between 68 and 65535"))
        }
        if !problems.isEmpty { throw ControlError.invalid(problems) }
        return try await write { db, events in
            guard let node = try Self.findNode(db, body.node) else {
                throw ControlError.invalid([FieldProblem(field: "node", reason: "node \"\(body.node)\" does not exist")])
            }
            if try NetworkRecord.filter(Column("name") == body.name && Column("node_id") == node.id).fetchCount(db) > 0 {
                throw ControlError.alreadyExists(kind: "network", name: "\(body.name) on \(node.name)", field: "name")
            }
            let network = NetworkRecord(id: Self.makeID("net"), name: body.name, nodeId: node.id, kind: body.kind,
                                        parent: body.parent, mtu: body.mtu ?? 1500, createdAt: Date())
            try network.insert(db)
            events.append(try Self.audit(db, actor: "api", action: "network.create", subject: .network, id: network.id,
                                         message: "network \(body.name) on \(node.name): \(body.kind.rawValue) \(body.parent)"))
            return network
        }
    }

    public func listNetworks(node: String?) async throws -> [NetworkRecord] {
        try await database.pool.read { db in
            var query = NetworkRecord.all()
            if let node {
                guard let found = try Self.findNode(db, node) else { throw ControlError.notFound(kind: "node", key: node) }
                query = query.filter(Column("node_id") == found.id)
            }
            return try query.order(Column("name"), Column("node_id")).fetchAll(db)
        }
    }

    // MARK: Rate-limit groups

    public func createRateLimitGroup(_ body: CreateRateLimitGroupBody) async throws -> RateLimitGroupRecord {
        var problems: [FieldProblem] = []
        if let reason = SpecIdentifier.problem(body.name) { problems.append(FieldProblem(field: "name", reason: reason)) }
        if body.rateLimiter.bandwidth == nil && body.rateLimiter.ops == nil {
            problems.append(FieldProblem(field: "rate_limiter", reason: "needs bandwidth or ops"))
        }
        for (field, bucket) in [("bandwidth", body.rateLimiter.bandwidth), ("ops", body.rateLimiter.ops)] {
            guard let bucket else { continue }
            if bucket.size <= 0 { problems.append(FieldProblem(field: "rate_limiter.\(field).size", reason: "\(bucket.size) is not positive")) }
            if bucket.refillTime <= 0 {
                problems.append(FieldProblem(field: "rate_limiter.\(field).refill_time", reason: "\(bucket.refillTime) is not positive"))
            }
        }
        if !problems.isEmpty { throw ControlError.invalid(problems) }
        return try await write { db, events in
            if try RateLimitGroupRecord.filter(Column("name") == body.name).fetchCount(db) > 0 {
                throw ControlError.alreadyExists(kind: "rate-limit group", name: body.name, field: "name")
            }
            let group = RateLimitGroupRecord(id: Self.makeID("rlg"), name: body.name, limiter: body.rateLimiter, createdAt: Date())
            try group.insert(db)
            events.append(try Self.audit(db, actor: "api", action: "rate_limit_group.create", subject: .rateLimitGroup,
                                         id: group.id, message: "rate-limit group \(body.name)"))
            return group
        }
    }

    public func listRateLimitGroups() async throws -> [RateLimitGroupRecord] {
        try await database.pool.read { db in try RateLimitGroupRecord.order(Column("name")).fetchAll(db) }
    }

    // MARK: Events and metrics

    public func events(after seq: Int64, limit: Int = 1000) async throws -> [EventRecord] {
        try await database.pool.read { db in
            try EventRecord.filter(Column("seq") > seq).order(Column("seq")).limit(limit).fetchAll(db)
        }
    }

    /// A Prometheus label value with backslash, quote and newline escaped.
    static func labelValue(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    /// The Prometheus text exposition of the inventory's gauges.
    public func metricsText() async throws -> String {
        let nodes = try await listNodes()
        let (vmCounts, opCounts, eventCount) = try await database.pool.read { db -> ([String: Int], [String: Int], Int) in
            func counts(_ sql: String) throws -> [String: Int] {
                Dictionary(try Row.fetchAll(db, sql: sql).map { (($0[0] as String?) ?? "", ($0[1] as Int?) ?? 0) },
                           uniquingKeysWith: +)
            }
            return (try counts("SELECT observed_state, count(*) FROM vms GROUP BY observed_state"),
                    try counts("SELECT status, count(*) FROM operations GROUP BY status"),
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM events") ?? 0)
        }
        var out = "# HELP qarax_nodes Nodes by status.\n# TYPE qarax_nodes gauge\n"
        for status in NodeStatus.allCases {
            out += "qarax_nodes{status=\"\(status.rawValue)\"} \(nodes.filter { $0.status == status }.count)\n"
        }
        out += "# HELP qarax_nodes_alive Nodes connected and heartbeating within the grace period.\n# TYPE qarax_nodes_alive gauge\n"
        out += "qarax_nodes_alive \(await registry.aliveNodes.count)\n"
        out += eventLag.prometheus(name: "qarax_node_event_lag_seconds",
                                   help: "From a node writing an event (its clock) to this daemon taking it up (includes clock offset).")
        out += "# HELP qarax_node_up Whether the node is connected and heartbeating (1) or not (0).\n# TYPE qarax_node_up gauge\n"
        for node in nodes {
            let alive = await registry.isAlive(node.id)
            out += "qarax_node_up{node=\"\(Self.labelValue(node.name))\"} \(alive ? 1 : 0)\n"
        }
        out += "# HELP qarax_vms VMs by observed state.\n# TYPE qarax_vms gauge\n"
        for state in ObservedVMState.allCases { out += "qarax_vms{observed_state=\"\(state.rawValue)\"} \(vmCounts[state.rawValue] ?? 0)\n" }
        out += "# HELP qarax_operations Operations by status.\n# TYPE qarax_operations gauge\n"
        for status in OperationStatus.allCases { out += "qarax_operations{status=\"\(status.rawValue)\"} \(opCounts[status.rawValue] ?? 0)\n" }
        out += "# HELP qarax_events_total Audit events recorded.\n# TYPE qarax_events_total counter\n"
        out += "qarax_events_total \(eventCount)\n"
        out += "# HELP qarax_event_subscribers Live event stream subscribers.\n# TYPE qarax_event_subscribers gauge\n"
        out += "qarax_event_subscribers \(events.subscriberCount)\n"
        return out
    }
}
