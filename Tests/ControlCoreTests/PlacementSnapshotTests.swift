import Testing
@testable import ControlCore

@Suite("Placement snapshot")
struct PlacementSnapshotTests {
    static func node(_ id: String) -> PlacementCandidate {
        PlacementCandidate(id: id, name: id, status: .up, cpus: 4, memoryBytes: 8 << 30)
    }

    @Test("Choices from one snapshot are charged to it, so they spread; one read serves many")
    func spreads() throws {
        let snapshot = PlacementSnapshot()
        var reads = 0
        let request = PlacementRequest(vcpus: 2, memoryBytes: 1 << 30)
        var chosen: [String] = []
        for _ in 0..<4 {
            let id = try snapshot.choose(for: request, policy: PlacementPolicy()) {
                reads += 1
                return [Self.node("a"), Self.node("b")]
            }
            chosen.append(try #require(id))
        }
        #expect(reads == 1)
        #expect(chosen.filter { $0 == "a" }.count == 2 && chosen.filter { $0 == "b" }.count == 2, "\(chosen)")
    }

    @Test("When nothing fits, the snapshot is dropped and the next choice reads again")
    func nothingFits() throws {
        let snapshot = PlacementSnapshot()
        var reads = 0
        let huge = PlacementRequest(vcpus: 1000, memoryBytes: 1 << 30)
        #expect(try snapshot.choose(for: huge, policy: PlacementPolicy()) { reads += 1; return [Self.node("a")] } == nil)
        #expect(try snapshot.choose(for: PlacementRequest(vcpus: 1, memoryBytes: 1 << 20), policy: PlacementPolicy()) {
            reads += 1
            return [Self.node("a")]
        } == "a")
        #expect(reads == 2)
    }
}
