import Testing
@testable import ControlCore

@Suite("Placement")
struct PlacementTests {
    static let gib = 1 << 30
    static let policy = PlacementPolicy(cpuOvercommit: 2, memoryOvercommit: 1)

    static func node(_ name: String, status: NodeStatus = .up, cpus: Int = 4, memory: Int = 8 << 30, vcpus: Int = 0,
                     used: Int = 0, huge: [Int: Int] = [:], vmms: Set<VMMBackend> = [.cloudHypervisor],
                     networks: Set<String> = [], kvm: Bool = true) -> PlacementCandidate {
        PlacementCandidate(id: "id-" + name, name: name, status: status, cpus: cpus, memoryBytes: memory, freeHugepages: huge,
                           vmms: vmms, networks: networks, kvm: kvm, allocatedVCPUs: vcpus, allocatedMemoryBytes: used)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let request: PlacementRequest
        let nodes: [PlacementCandidate]
        /// The chosen node, or nil when placement must fail.
        let chosen: String?
        /// For failures: node → expected reasons.
        let reasons: [String: [PlacementRejection]]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "least allocated wins", request: .init(vcpus: 1, memoryBytes: gib),
             nodes: [node("a", vcpus: 6), node("b", vcpus: 1)], chosen: "b", reasons: [:]),
        Case(name: "ties break by name", request: .init(vcpus: 1, memoryBytes: gib),
             nodes: [node("b"), node("a")], chosen: "a", reasons: [:]),
        Case(name: "memory share counts", request: .init(vcpus: 1, memoryBytes: gib),
             nodes: [node("a", used: 6 * gib), node("b", vcpus: 2)], chosen: "b", reasons: [:]),
        Case(name: "cpu over-commit allows 8 vCPUs on 4 CPUs", request: .init(vcpus: 8, memoryBytes: gib),
             nodes: [node("a")], chosen: "a", reasons: [:]),
        Case(name: "cpu over-commit exhausted", request: .init(vcpus: 3, memoryBytes: gib),
             nodes: [node("a", vcpus: 6)], chosen: nil, reasons: ["a": [.vcpus(needed: 3, available: 2)]]),
        Case(name: "memory exhausted", request: .init(vcpus: 1, memoryBytes: 4 * gib),
             nodes: [node("a", used: 5 * gib)], chosen: nil, reasons: ["a": [.memory(needed: 4 * gib, available: 3 * gib)]]),
        Case(name: "maintenance and down nodes are skipped", request: .init(vcpus: 1, memoryBytes: gib),
             nodes: [node("a", status: .maintenance), node("b", status: .down), node("c", status: .unknown)], chosen: nil,
             reasons: ["a": [.notUp(.maintenance)], "b": [.notUp(.down)], "c": [.notUp(.unknown)]]),
        Case(name: "hugepages of the right size", request: .init(vcpus: 1, memoryBytes: gib, hugepageSize: 2 << 20),
             nodes: [node("a", huge: [1 << 30: 4]), node("b", huge: [2 << 20: 512])], chosen: "b",
             reasons: [:]),
        Case(name: "not enough hugepages", request: .init(vcpus: 1, memoryBytes: gib, hugepageSize: 2 << 20),
             nodes: [node("a", huge: [2 << 20: 100])], chosen: nil,
             reasons: ["a": [.hugepages(pageSize: 2 << 20, needed: 512, free: 100)]]),
        Case(name: "hugepage memory does not count against normal memory", request: .init(vcpus: 1, memoryBytes: 4 * gib, hugepageSize: 1 << 30),
             nodes: [node("a", used: 8 * gib, huge: [1 << 30: 4])], chosen: "a", reasons: [:]),
        Case(name: "VMM backend", request: .init(vcpus: 1, memoryBytes: gib, vmm: .qemu),
             nodes: [node("a"), node("b", vmms: [.cloudHypervisor, .qemu])], chosen: "b", reasons: [:]),
        Case(name: "a node without KVM is refused", request: .init(vcpus: 1, memoryBytes: gib),
             nodes: [node("a", kvm: false)], chosen: nil, reasons: ["a": [.noKVM]]),
        Case(name: "network present", request: .init(vcpus: 1, memoryBytes: gib, networks: ["prod", "storage"]),
             nodes: [node("a", networks: ["prod"]), node("b", networks: ["prod", "storage", "x"])], chosen: "b", reasons: [:]),
        Case(name: "every reason for every node", request: .init(vcpus: 16, memoryBytes: 16 * gib, vmm: .qemu, networks: ["prod"]),
             nodes: [node("a", status: .down), node("b", status: .maintenance)], chosen: nil,
             reasons: [
                "a": [.notUp(.down), .vcpus(needed: 16, available: 8), .memory(needed: 16 * gib, available: 8 * gib), .vmm(.qemu), .networks(missing: ["prod"])],
                "b": [.notUp(.maintenance), .vcpus(needed: 16, available: 8), .memory(needed: 16 * gib, available: 8 * gib), .vmm(.qemu), .networks(missing: ["prod"])],
             ]),
        Case(name: "pin overrides spread", request: .init(vcpus: 1, memoryBytes: gib, pinnedNode: "a"),
             nodes: [node("a", vcpus: 6), node("b")], chosen: "a", reasons: [:]),
        Case(name: "pin by id", request: .init(vcpus: 1, memoryBytes: gib, pinnedNode: "id-b"),
             nodes: [node("a"), node("b", vcpus: 6)], chosen: "b", reasons: [:]),
        Case(name: "pinned node that does not fit names only that node", request: .init(vcpus: 1, memoryBytes: gib, pinnedNode: "a"),
             nodes: [node("a", status: .down), node("b")], chosen: nil, reasons: ["a": [.notUp(.down)]]),
        Case(name: "no nodes", request: .init(vcpus: 1, memoryBytes: gib), nodes: [], chosen: nil, reasons: [:]),
    ]

    @Test(arguments: cases)
    func table(_ c: Case) {
        do {
            let chosen = try Placement.choose(for: c.request, among: c.nodes, policy: Self.policy)
            #expect(chosen.name == c.chosen)
        } catch {
            #expect(c.chosen == nil, "placement failed: \(error)")
            let got = Dictionary(error.byNode.map { ($0.node, $0.reasons) }, uniquingKeysWith: { a, _ in a })
            #expect(got == c.reasons)
        }
    }

    @Test func failureNamesEachNode() {
        let request = PlacementRequest(vcpus: 64, memoryBytes: 1 << 30)
        #expect(throws: PlacementFailure.self) {
            try Placement.choose(for: request, among: [Self.node("a"), Self.node("b", status: .down)], policy: Self.policy)
        }
        do {
            _ = try Placement.choose(for: request, among: [Self.node("a"), Self.node("b", status: .down)], policy: Self.policy)
        } catch {
            #expect(error.description == "no node can take the VM: a: needs 64 vCPUs, 8 available | b: node is DOWN; needs 64 vCPUs, 8 available")
        }
    }
}
