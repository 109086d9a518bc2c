import Synchronization

/// Node capacities for choosing a node without reading every node per placement. A choice made
/// from the snapshot is only a proposal: the write transaction re-checks the node against the
/// database, so a stale snapshot costs placement quality at worst, never an overcommitted node.
final class PlacementSnapshot: Sendable {
    /// How long a read of all nodes serves before it is read again.
    static let maxAge: Duration = .milliseconds(250)

    private struct State {
        var candidates: [PlacementCandidate] = []
        var takenAt: ContinuousClock.Instant?
    }

    private let state = Mutex(State())

    /// The node `request` goes to, or nil when none fits; `read` supplies fresh candidates when
    /// the snapshot is missing or old. The choice is charged to the snapshot's copy of the node.
    func choose(for request: PlacementRequest, policy: PlacementPolicy,
                read: () throws -> [PlacementCandidate]) throws -> String? {
        let now = ContinuousClock.now
        let current = state.withLock { state -> [PlacementCandidate]? in
            guard let takenAt = state.takenAt, now - takenAt < Self.maxAge else { return nil }
            return state.candidates
        }
        let candidates = try current ?? read()
        guard let chosen = try? Placement.choose(for: request, among: candidates, policy: policy) else {
            state.withLock { $0.takenAt = nil }
            return nil
        }
        state.withLock { state in
            if current == nil {
                state.candidates = candidates
                state.takenAt = now
            }
            guard let index = state.candidates.firstIndex(where: { $0.id == chosen.id }) else { return }
            state.candidates[index].allocatedVCPUs += request.vcpus
            if request.hugepageSize == nil {
                state.candidates[index].allocatedMemoryBytes += request.memoryBytes
            } else if let size = request.hugepageSize {
                state.candidates[index].freeHugepages[size, default: 0] -= (request.memoryBytes + size - 1) / size
            }
        }
        return chosen.id
    }
}
