import Synchronization

/// Where the control daemon reads the time for liveness: the system's continuous clock in
/// production, a clock the test moves by hand in tests.
public struct ControlClock: Sendable {
    public let now: @Sendable () -> ContinuousClock.Instant

    public init(now: @escaping @Sendable () -> ContinuousClock.Instant) {
        self.now = now
    }

    public static let system = ControlClock { ContinuousClock.now }
}

/// A clock that moves only when told to.
public final class ManualClock: Sendable {
    private let current: Mutex<ContinuousClock.Instant>

    public init(start: ContinuousClock.Instant = .now) {
        current = Mutex(start)
    }

    public func advance(by duration: Duration) {
        current.withLock { $0 = $0.advanced(by: duration) }
    }

    public var controlClock: ControlClock {
        ControlClock { [self] in self.current.withLock { $0 } }
    }
}

/// Liveness from heartbeats, as a pure state machine: a node is alive from a heartbeat until
/// `grace` passes without one, or until it disconnects.
public struct LivenessTracker: Sendable {
    public let grace: Duration
    private var lastHeartbeat: [String: ContinuousClock.Instant] = [:]
    private(set) public var alive: Set<String> = []

    public init(grace: Duration = .seconds(15)) {
        self.grace = grace
    }

    /// Records a heartbeat; true when the node was not alive before.
    public mutating func heartbeat(_ node: String, at now: ContinuousClock.Instant) -> Bool {
        lastHeartbeat[node] = now
        return alive.insert(node).inserted
    }

    /// The link closed; true when the node was alive.
    public mutating func disconnected(_ node: String) -> Bool {
        lastHeartbeat[node] = nil
        return alive.remove(node) != nil
    }

    /// Nodes whose last heartbeat is older than `grace` at `now`; they are no longer alive.
    public mutating func expire(at now: ContinuousClock.Instant) -> [String] {
        let dead = alive.filter { node in
            guard let last = lastHeartbeat[node] else { return true }
            return now - last > grace
        }.sorted()
        for node in dead { alive.remove(node) }
        return dead
    }
}
