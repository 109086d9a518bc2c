import Foundation
public import GRDB

/// The control daemon's inventory: one SQLite file in WAL mode behind one connection pool for the
/// whole process, with foreign keys enforced and the schema migrated on open. Commits do not wait
/// for the disk; ``durability`` batches the disk flushes of concurrent writers (group commit).
public final class InventoryDatabase: Sendable {
    /// The pool every reader and writer of the process shares.
    public let pool: DatabasePool
    public let path: String
    /// Await ``WALDurability/flush()`` after a write before acknowledging it.
    public let durability: WALDurability

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    public init(path: String) throws {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(5)
        configuration.label = "qarax-inventory"
        configuration.prepareDatabase { db in
            // Durability comes from `durability`'s batched flushes of the WAL.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        self.path = path
        durability = WALDurability(databasePath: path)
        pool = try DatabasePool(path: path, configuration: configuration)
        try Schema.migrator.migrate(pool)
    }

    /// The identifiers of the applied migrations, oldest first.
    public func appliedMigrations() throws -> [String] {
        try pool.read { db in try Schema.migrator.appliedIdentifiers(db).sorted() }
    }

    /// The identifiers of every migration this build knows, oldest first.
    public static var knownMigrations: [String] { Schema.migrator.migrations }
}
