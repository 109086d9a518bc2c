import GRDB
import VMModel
import Synchronization

/// Decoded node inventories for placement, so choosing a node does not decode every node's
/// inventory JSON again. Filled from the database on a miss; every write of a node's inventory
/// invalidates its entry inside the same write transaction (the writer is serial, so a later
/// placement can never read an entry older than the committed row).
final class NodeInventoryCache: Sendable {
    private let entries = Mutex<[String: NodeInventory?]>([:])

    /// The inventory of every node in `ids` (nil for nodes that never reported one).
    func inventories(_ db: Database, ids: [String]) throws -> [String: NodeInventory?] {
        var found: [String: NodeInventory?] = [:]
        found.reserveCapacity(ids.count)
        let missing = entries.withLock { entries in
            ids.filter { id in
                guard let entry = entries[id] else { return true }
                found[id] = entry
                return false
            }
        }
        guard !missing.isEmpty else { return found }
        let loaded = try NodeRecord.filter(keys: missing).fetchAll(db)
        entries.withLock { entries in
            for node in loaded { entries[node.id] = .some(node.inventory) }
        }
        for node in loaded { found[node.id] = .some(node.inventory) }
        return found
    }

    /// Forget `id`'s entry (its inventory was just written).
    func invalidate(_ id: String) {
        _ = entries.withLock { $0.removeValue(forKey: id) }
    }
}

extension NodeInventory {
    /// The VMM backends the node offers.
    var backends: Set<VMMBackend> { Set(vmms.map(\.backend)) }
}
