import Foundation
import GRDB
import Testing
@testable import ControlCore

@Suite("Inventory schema")
struct InventoryTests {
    @Test func migratesFromEmpty() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let db = try InventoryDatabase(path: dir.path + "/q.db")
        #expect(try db.appliedMigrations() == ["v1"])
        #expect(InventoryDatabase.knownMigrations == ["v1"])
        let tables = try db.pool.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'grdb_%' ORDER BY name")
        }
        #expect(tables == ["disks", "events", "image_nodes", "images", "networks", "nics", "nodes", "operations", "rate_limit_groups", "vms"])
        let mode = try db.pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        let foreignKeys = try db.pool.read { db in try Int.fetchOne(db, sql: "PRAGMA foreign_keys") }
        #expect(foreignKeys == 1)
        // Reopening applies nothing new and keeps the data.
        try db.pool.write { db in
            try NodeRecord(id: "n1", name: "n1", address: "a", status: .unknown, maintenance: false, inventory: nil,
                           nodeVersion: "", protocolVersion: 0, lastSeen: nil, createdAt: Date()).insert(db)
        }
        let again = try InventoryDatabase(path: dir.path + "/q.db")
        #expect(try again.pool.read { db in try NodeRecord.fetchCount(db) } == 1)
    }

    static let violations: [(String, String)] = [
        ("bad node status", "INSERT INTO nodes (id, name, address, status, created_at) VALUES ('x', 'x', 'a', 'SLEEPY', '2026-01-01')"),
        ("maintenance status without the flag", "INSERT INTO nodes (id, name, address, status, created_at) VALUES ('x', 'x', 'a', 'MAINTENANCE', '2026-01-01')"),
        ("duplicate node name", "INSERT INTO nodes (id, name, address, status, created_at) VALUES ('y', 'n1', 'a', 'UP', '2026-01-01')"),
        ("VM on a missing node", """
            INSERT INTO vms (id, name, spec, vmm, desired_state, observed_state, node_id, vcpus, memory_bytes, created_at, updated_at)
            VALUES ('v', 'v', '{}', 'qemu', 'running', 'pending', 'nope', 1, 1, '2026-01-01', '2026-01-01')
            """),
        ("bad desired state", """
            INSERT INTO vms (id, name, spec, vmm, desired_state, observed_state, vcpus, memory_bytes, created_at, updated_at)
            VALUES ('v', 'v', '{}', 'qemu', 'flying', 'pending', 1, 1, '2026-01-01', '2026-01-01')
            """),
        ("zero vCPUs", """
            INSERT INTO vms (id, name, spec, vmm, desired_state, observed_state, vcpus, memory_bytes, created_at, updated_at)
            VALUES ('v', 'v', '{}', 'qemu', 'running', 'pending', 0, 1, '2026-01-01', '2026-01-01')
            """),
        ("bad sha256", "INSERT INTO images (id, name, kind, path, size_bytes, sha256, created_at) VALUES ('i', 'i', 'disk', '/x', 1, 'XYZ', '2026-01-01')"),
        ("failed operation without error", """
            INSERT INTO operations (id, kind, status, request, request_digest, created_at, updated_at, finished_at)
            VALUES ('o', 'start_vm', 'failed', '{}', 'd', '2026-01-01', '2026-01-01', '2026-01-01')
            """),
        ("finished operation without finish time", """
            INSERT INTO operations (id, kind, status, request, request_digest, created_at, updated_at)
            VALUES ('o', 'start_vm', 'succeeded', '{}', 'd', '2026-01-01', '2026-01-01')
            """),
        ("network MTU out of range", "INSERT INTO networks (id, name, node_id, kind, parent, mtu, created_at) VALUES ('w', 'w', 'n1', 'bridge', 'br0', 70000, '2026-01-01')"),
    ]

    @Test(arguments: violations)
    func schemaRefuses(_ violation: (String, String)) throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let db = try InventoryDatabase(path: dir.path + "/q.db")
        try db.pool.write { db in
            try db.execute(sql: "INSERT INTO nodes (id, name, address, status, created_at) VALUES ('n1', 'n1', 'a', 'UP', '2026-01-01')")
        }
        #expect(throws: DatabaseError.self, "\(violation.0)") {
            try db.pool.write { db in try db.execute(sql: violation.1) }
        }
    }
}

@Suite("Token file")
struct TokenFileTests {
    @Test func createdWithMode0600AndReusedAfter() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = dir.path + "/sub/token"
        let token = try TokenFile.loadOrCreate(at: path)
        #expect(token.count == 64)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        #expect(try TokenFile.loadOrCreate(at: path) == token)
    }

    @Test func aTokenFileOthersCanReadIsRefused() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = dir.path + "/token"
        _ = try TokenFile.loadOrCreate(at: path)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(throws: TokenFileError(path: path, mode: 0o644)) { try TokenFile.loadOrCreate(at: path) }
    }
}
