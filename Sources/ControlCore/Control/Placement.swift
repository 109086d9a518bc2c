/// Over-commit ratios and other knobs of placement.
public struct PlacementPolicy: Sendable, Hashable {
    /// vCPUs a node offers per host CPU (≥ 1).
    public var cpuOvercommit: Double
    /// Guest memory a node offers per byte of host memory (≥ 1 would over-commit).
    public var memoryOvercommit: Double

    public init(cpuOvercommit: Double = 4, memoryOvercommit: Double = 1) {
        self.cpuOvercommit = cpuOvercommit
        self.memoryOvercommit = memoryOvercommit
    }
}

/// What a VM needs from a node.
public struct PlacementRequest: Sendable, Hashable {
    public var vcpus: Int
    public var memoryBytes: Int
    /// The hugepage size backing guest memory, when it uses hugepages.
    public var hugepageSize: Int?
    public var vmm: VMMBackend
    /// Network names the VM's NICs attach to.
    public var networks: Set<String>
    /// Only this node (id) may take the VM.
    public var pinnedNode: String?

    public init(vcpus: Int, memoryBytes: Int, hugepageSize: Int? = nil, vmm: VMMBackend = .cloudHypervisor,
                networks: Set<String> = [], pinnedNode: String? = nil) {
        self.vcpus = vcpus
        self.memoryBytes = memoryBytes
        self.hugepageSize = hugepageSize
        self.vmm = vmm
        self.networks = networks
        self.pinnedNode = pinnedNode
    }
}

/// A node as placement sees it: capacity, what is already allocated there, what it offers.
public struct PlacementCandidate: Sendable, Hashable {
    public var id: String
    public var name: String
    public var status: NodeStatus
    public var cpus: Int
    public var memoryBytes: Int
    /// Free hugepages per page size, already net of placements the node has not reported yet.
    public var freeHugepages: [Int: Int]
    public var vmms: Set<VMMBackend>
    public var networks: Set<String>
    /// The node has a usable /dev/kvm.
    public var kvm: Bool
    public var allocatedVCPUs: Int
    public var allocatedMemoryBytes: Int

    public init(id: String, name: String, status: NodeStatus, cpus: Int, memoryBytes: Int,
                freeHugepages: [Int: Int] = [:], vmms: Set<VMMBackend> = [.cloudHypervisor],
                networks: Set<String> = [], kvm: Bool = true, allocatedVCPUs: Int = 0, allocatedMemoryBytes: Int = 0) {
        self.id = id
        self.name = name
        self.status = status
        self.cpus = cpus
        self.memoryBytes = memoryBytes
        self.freeHugepages = freeHugepages
        self.vmms = vmms
        self.networks = networks
        self.kvm = kvm
        self.allocatedVCPUs = allocatedVCPUs
        self.allocatedMemoryBytes = allocatedMemoryBytes
    }
}

/// Why one node cannot take a VM.
public enum PlacementRejection: Sendable, Hashable, CustomStringConvertible {
    case notUp(NodeStatus)
    case notPinned(pinned: String)
    case vcpus(needed: Int, available: Int)
    case memory(needed: Int, available: Int)
    case hugepages(pageSize: Int, needed: Int, free: Int)
    case vmm(VMMBackend)
    case noKVM
    case networks(missing: [String])

    public var description: String {
        switch self {
        case .notUp(.maintenance): "node is in maintenance"
        case .notUp(let status): "node is \(status.rawValue)"
        case .notPinned(let pinned): "the VM is pinned to node \(pinned)"
        case .vcpus(let needed, let available): "needs \(needed) vCPUs, \(available) available"
        case .memory(let needed, let available):
            "needs \(Self.bytes(needed)) of memory, \(Self.bytes(available)) available"
        case .hugepages(let size, let needed, let free):
            "needs \(needed) free \(Self.bytes(size)) hugepages, \(free) free"
        case .vmm(let backend): "has no \(backend.rawValue) VMM"
        case .noKVM: "has no usable /dev/kvm"
        case .networks(let missing): "lacks network\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", "))"
        }
    }

    static func bytes(_ n: Int) -> String {
        if n >= 1 << 30, n % (1 << 30) == 0 { return "\(n >> 30) GiB" }
        if n >= 1 << 20, n % (1 << 20) == 0 { return "\(n >> 20) MiB" }
        return "\(n) bytes"
    }
}

/// No node can take the VM: each node with every reason it was refused.
public struct PlacementFailure: Error, Sendable, Hashable, CustomStringConvertible {

    public struct NodeRejection: Sendable, Hashable {
        public var node: String
        public var reasons: [PlacementRejection]
    }

    public var byNode: [NodeRejection]

    public var description: String {
        if byNode.isEmpty { return "no node is registered" }
        return "no node can take the VM: " + byNode.map { rejection in
            "\(rejection.node): \(rejection.reasons.map(\.description).joined(separator: "; "))"
        }.joined(separator: " | ")
    }
}

/// Chooses a node for a VM: every node that fits, then the least allocated one (spread).
public enum Placement {
    /// Every reason `candidate` cannot take `request` (empty: it fits).
    public static func rejections(of candidate: PlacementCandidate, for request: PlacementRequest,
                                  policy: PlacementPolicy) -> [PlacementRejection] {
        var reasons: [PlacementRejection] = []
        if let pinned = request.pinnedNode, pinned != candidate.id, pinned != candidate.name {
            return [.notPinned(pinned: pinned)]
        }
        if candidate.status != .up { reasons.append(.notUp(candidate.status)) }
        let vcpuCapacity = Int((Double(candidate.cpus) * policy.cpuOvercommit).rounded(.down))
        let freeVCPUs = max(0, vcpuCapacity - candidate.allocatedVCPUs)
        if request.vcpus > freeVCPUs { reasons.append(.vcpus(needed: request.vcpus, available: freeVCPUs)) }
        if let pageSize = request.hugepageSize {
            let needed = (request.memoryBytes + pageSize - 1) / pageSize
            let free = candidate.freeHugepages[pageSize] ?? 0
            if needed > free { reasons.append(.hugepages(pageSize: pageSize, needed: needed, free: free)) }
        } else {
            let capacity = Int((Double(candidate.memoryBytes) * policy.memoryOvercommit).rounded(.down))
            let free = max(0, capacity - candidate.allocatedMemoryBytes)
            if request.memoryBytes > free { reasons.append(.memory(needed: request.memoryBytes, available: free)) }
        }
        if !candidate.vmms.contains(request.vmm) { reasons.append(.vmm(request.vmm)) }
        if !candidate.kvm { reasons.append(.noKVM) }
        let missing = request.networks.subtracting(candidate.networks).sorted()
        if !missing.isEmpty { reasons.append(.networks(missing: missing)) }
        return reasons
    }

    /// How full `candidate` would be with `request` on it: the larger of its vCPU and memory shares.
    public static func load(of candidate: PlacementCandidate, with request: PlacementRequest,
                            policy: PlacementPolicy) -> Double {
        let vcpuCapacity = max(1, Double(candidate.cpus) * policy.cpuOvercommit)
        let memoryCapacity = max(1, Double(candidate.memoryBytes) * policy.memoryOvercommit)
        let cpuShare = Double(candidate.allocatedVCPUs + request.vcpus) / vcpuCapacity
        let memoryShare = request.hugepageSize == nil
            ? Double(candidate.allocatedMemoryBytes + request.memoryBytes) / memoryCapacity
            : Double(candidate.allocatedMemoryBytes) / memoryCapacity
        return max(cpuShare, memoryShare)
    }

    /// The node for `request`: among those that fit, the least loaded after placement (ties: by
    /// name). Throws every node's reasons when none fits.
    public static func choose(for request: PlacementRequest, among candidates: [PlacementCandidate],
                              policy: PlacementPolicy = PlacementPolicy()) throws(PlacementFailure) -> PlacementCandidate {
        var fitting: [(candidate: PlacementCandidate, load: Double)] = []
        var refused: [PlacementFailure.NodeRejection] = []
        for candidate in candidates.sorted(by: { $0.name < $1.name }) {
            let reasons = rejections(of: candidate, for: request, policy: policy)
            if reasons.isEmpty {
                fitting.append((candidate, load(of: candidate, with: request, policy: policy)))
            } else {
                refused.append(.init(node: candidate.name, reasons: reasons))
            }
        }
        guard let best = fitting.min(by: { $0.load < $1.load || ($0.load == $1.load && $0.candidate.name < $1.candidate.name) })
        else {
            if let pinned = request.pinnedNode,
               !candidates.contains(where: { $0.id == pinned || $0.name == pinned }) {
                throw PlacementFailure(byNode: [.init(node: pinned, reasons: [.notUp(.unknown)])])
            }
            throw PlacementFailure(byNode: refused.filter { rejection in
                request.pinnedNode == nil || !rejection.reasons.contains { if case .notPinned = $0 { true } else { false } }
            })
        }
        return best.candidate
    }
}
