import Foundation
import GRDB
import Testing
@testable import ControlCore
#if canImport(Glibc)
import Glibc
#endif

/// Group commit: commits don't wait for the disk, API writes await one shared WAL flush.
@Suite("Inventory durability (group commit)")
struct WALDurabilityTests {
    @Test("Every connection runs with synchronous = NORMAL (the flush thread provides durability)")
    func pragma() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let database = try InventoryDatabase(path: dir.path + "/q.db")
        #expect(try await database.pool.read { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 1)
        #expect(try await database.pool.write { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 1)
        #expect(try await database.pool.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "wal")
    }

    @Test("Concurrent API writes all land, sharing flushes (never more flushes than writes)")
    func concurrentWrites() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let service = try makeService(dir)
        let before = service.database.durability.flushCount
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<64 {
                group.addTask { _ = try await service.createVM(CreateVMBody(spec: sampleSpec("vm\(i)")), idempotencyKey: nil) }
            }
            try await group.waitForAll()
        }
        let flushes = service.database.durability.flushCount - before
        #expect(flushes >= 1 && flushes <= 64, "\(flushes) flushes for 64 writes")
        // A second process's view of the file: every acknowledged VM is there.
        let reopened = try InventoryDatabase(path: dir.path + "/qarax.db")
        #expect(try await reopened.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM vms") } == 64)
    }

    @Test("A WAL file replaced behind the flusher's back is reopened, a missing one needs no flush")
    func replacedAndMissingWAL() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let durability = WALDurability(databasePath: dir.path + "/none.db")
        defer { durability.close() }
        try await durability.flush()                                  // no WAL yet: nothing to flush
        _ = FileManager.default.createFile(atPath: durability.walPath, contents: Data([1]))
        try await durability.flush()
        let first = try FileManager.default.attributesOfItem(atPath: durability.walPath)[.systemFileNumber] as? UInt64
        try FileManager.default.removeItem(atPath: durability.walPath)
        _ = FileManager.default.createFile(atPath: dir.path + "/placeholder", contents: nil) // keep the old inode number taken
        _ = FileManager.default.createFile(atPath: durability.walPath, contents: Data([2]))
        let second = try FileManager.default.attributesOfItem(atPath: durability.walPath)[.systemFileNumber] as? UInt64
        #expect(first != second)
        try await durability.flush()
        #expect(durability.flushCount == 3)
    }

    @Test("After close, a flush fails instead of pretending")
    func closed() async throws {
        let durability = WALDurability(databasePath: "/tmp/qarax-wal-test-\(UInt32.random(in: 0...UInt32.max)).db")
        durability.close()
        await #expect(throws: WALFlushError.self) { try await durability.flush() }
    }
}
