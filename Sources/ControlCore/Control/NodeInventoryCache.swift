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
        var known = entries.withLock { $0 }
        let missing = ids.filter { known[$0] == nil }
        if !missing.isEmpty {
            let loaded = try NodeRecord.filter(keys: missing).fetchAll(db)
            entries.withLock { entries in
                for node in loaded {
                    entries[node.id] = .some(node.inventory)
                    known[node.id] = .some(node.inventory)
                }
            }
        }
        return known
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
