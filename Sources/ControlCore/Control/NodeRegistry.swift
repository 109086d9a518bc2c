public import Foundation
import Synchronization

/// Connected nodes and their liveness, in memory. Heartbeats touch only memory; ``takeDirty()``
/// hands the accumulated changes to the flusher, which persists them in one transaction.
public actor NodeRegistry {
    /// A node whose liveness changed, or whose `last_seen` moved, since the last flush.
    public struct PendingChange: Sendable, Hashable {
        public var nodeID: String
        public var lastSeen: Date
        /// The new liveness (UP/DOWN) when it changed.
        public var status: NodeStatus?
    }

    private var tracker: LivenessTracker
    private let clock: ControlClock
    /// A heartbeat alone is persisted (as `last_seen`) at most this often per node; liveness
    /// changes are persisted at the next flush. The API reads `last_seen` from memory.
    private let lastSeenPersistInterval: TimeInterval
    private var persistedLastSeen: [String: Date] = [:]
    /// Liveness reports noted from network threads (``heard(_:)``), applied on the next read.
    private let inbox = Mutex<[String: ContinuousClock.Instant]>([:])
    private var links: [String: any NodeLink] = [:]
    private var linkGeneration: [String: Int] = [:]
    private var lastSeen: [String: Date] = [:]
    private var dirty: [String: PendingChange] = [:]

    public init(grace: Duration = .seconds(15), clock: ControlClock = .system, lastSeenPersistInterval: TimeInterval = 60) {
        tracker = LivenessTracker(grace: grace)
        self.clock = clock
        self.lastSeenPersistInterval = lastSeenPersistInterval
    }

    /// Attaches a node's link; returns a generation number that ``detach(_:generation:)`` must present.
    public func attach(_ nodeID: String, link: any NodeLink) -> Int {
        links[nodeID] = link
        let generation = (linkGeneration[nodeID] ?? 0) + 1
        linkGeneration[nodeID] = generation
        _ = tracker.heartbeat(nodeID, at: clock.now())
        record(nodeID, status: .up)
        return generation
    }

    /// The link closed. A newer link of the same node (a reconnect that raced) is left alone.
    public func detach(_ nodeID: String, generation: Int) {
        guard linkGeneration[nodeID] == generation else { return }
        drainInbox()
        links[nodeID] = nil
        if tracker.disconnected(nodeID) { record(nodeID, status: .down) }
    }

    /// Notes a liveness report without entering the actor: called on the link's event loop for
    /// every report, so a fleet's heartbeats cost a map write each, not a task hop each. Applied
    /// before any liveness is read.
    public nonisolated func heard(_ nodeID: String) {
        let now = clock.now()
        inbox.withLock { $0[nodeID] = now }
    }

    private func drainInbox() {
        let heard = inbox.withLock { inbox in
            defer { inbox.removeAll(keepingCapacity: true) }
            return inbox
        }
        for (nodeID, at) in heard where links[nodeID] != nil {
            let revived = tracker.heartbeat(nodeID, at: at)
            record(nodeID, status: revived ? .up : nil)
        }
    }

    /// A heartbeat (or any message) from the node.
    public func heartbeat(_ nodeID: String) {
        let revived = tracker.heartbeat(nodeID, at: clock.now())
        record(nodeID, status: revived ? .up : nil)
    }

    /// Marks nodes silent for longer than the grace period DOWN; returns them.
    @discardableResult
    public func sweep() -> [String] {
        drainInbox()
        let dead = tracker.expire(at: clock.now())
        for node in dead {
            var change = dirty[node] ?? PendingChange(nodeID: node, lastSeen: lastSeen[node] ?? Date(), status: nil)
            change.status = .down
            dirty[node] = change
        }
        return dead
    }

    /// Liveness as known in memory: UP for nodes heartbeating within the grace period.
    public func isAlive(_ nodeID: String) -> Bool {
        drainInbox()
        return tracker.alive.contains(nodeID)
    }

    public var aliveNodes: Set<String> {
        drainInbox()
        return tracker.alive
    }

    /// The link to a connected, alive node.
    public func link(for nodeID: String) -> (any NodeLink)? {
        drainInbox()
        return tracker.alive.contains(nodeID) ? links[nodeID] : nil
    }

    /// When the node was last heard from (memory; fresher than the persisted `last_seen`).
    public func lastHeard(_ nodeID: String) -> Date? {
        drainInbox()
        return lastSeen[nodeID]
    }

    /// The changes accumulated since the last call, cleared.
    public func takeDirty() -> [PendingChange] {
        drainInbox()
        defer { dirty = [:] }
        for change in dirty.values { persistedLastSeen[change.nodeID] = change.lastSeen }
        return dirty.values.sorted { $0.nodeID < $1.nodeID }
    }

    /// Puts changes back after a failed flush (newer changes win).
    public func restore(_ changes: [PendingChange]) {
        for change in changes where dirty[change.nodeID] == nil { dirty[change.nodeID] = change }
    }

    private func record(_ nodeID: String, status: NodeStatus?) {
        let now = Date()
        lastSeen[nodeID] = now
        if status == nil, dirty[nodeID] == nil, let persisted = persistedLastSeen[nodeID],
           now.timeIntervalSince(persisted) < lastSeenPersistInterval {
            return
        }
        var change = dirty[nodeID] ?? PendingChange(nodeID: nodeID, lastSeen: now, status: nil)
        change.lastSeen = now
        if let status { change.status = status }
        dirty[nodeID] = change
    }
}
