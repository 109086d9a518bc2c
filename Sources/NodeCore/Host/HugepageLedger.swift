public import LinuxSys
public import VMModel
import Synchronization


/// What one VM needs from one hugepage pool.
public struct HugepageNeed: Hashable, Sendable, CustomStringConvertible {
    public var pageSize: HugepageSize
    public var pages: Int
    /// The NUMA node the pages must come from; nil for any.
    public var numaNode: Int?

    public init(pageSize: HugepageSize, pages: Int, numaNode: Int? = nil) {
        self.pageSize = pageSize
        self.pages = pages
        self.numaNode = numaNode
    }

    /// The pages guest memory needs at boot (`size` rounded up to whole pages); nil when the spec
    /// does not use hugepages. Hotplugged memory is reserved when it is plugged, not here.
    public init?(memory: MemorySpec, numaNode: Int? = nil) {
        guard memory.hugepages else { return nil }
        let page = memory.effectiveHugepageSize.bytes
        self.init(pageSize: HugepageSize(bytes: page), pages: (memory.size.bytes + page - 1) / page, numaNode: numaNode)
    }

    public var description: String {
        "\(pages) \(pageSize) hugepages" + (numaNode.map { " on NUMA node \($0)" } ?? "")
    }
}

/// Why hugepages could not be reserved for a VM.
public enum HugepageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not enough free pages, and the node may not raise `nr_hugepages`.
    case shortage(need: HugepageNeed, available: Int)
    /// `nr_hugepages` was raised but the kernel could not allocate enough pages (fragmented
    /// memory); what was added has been given back.
    case kernelShortfall(need: HugepageNeed, available: Int)
    /// The kernel has no pool of that page size.
    case unsupportedPageSize(HugepageSize, supported: [HugepageSize])
    /// No such NUMA node.
    case noSuchNode(Int, nodes: [Int])
    /// Reading or writing sysfs failed.
    case system(SystemError)

    public var description: String {
        switch self {
        case .shortage(let need, let available):
            "memory: needs \(need.pages) free \(need.pageSize) hugepages\(Self.on(need)), \(available) are free: "
                + "\(need.pages - available) missing"
        case .kernelShortfall(let need, let available):
            "memory: needs \(need.pages) free \(need.pageSize) hugepages\(Self.on(need)); raising nr_hugepages "
                + "left only \(available) free (the kernel found no more contiguous memory): "
                + "\(need.pages - available) missing"
        case .unsupportedPageSize(let size, let supported):
            "memory.hugepage_size: \(size) is not a hugepage size of this host (it has "
                + "\(supported.map(\.description).joined(separator: ", ")))"
        case .noSuchNode(let node, let nodes):
            "memory: NUMA node \(node) does not exist (nodes: \(nodes.map(String.init).joined(separator: ", ")))"
        case .system(let error):
            "hugepages: \(error)"
        }
    }

    private static func on(_ need: HugepageNeed) -> String {
        need.numaNode.map { " on NUMA node \($0)" } ?? ""
    }
}

/// Pages held for one VM by a ``HugepageLedger``.
public struct HugepageReservation: Hashable, Sendable {
    public let id: UInt64
    public let vm: String
    public let need: HugepageNeed
    /// Pages this reservation added to the pool (raised `nr_hugepages`).
    public let addedPages: Int
}

/// The process-wide account of hugepages promised to VMs.
///
/// The kernel's free count cannot tell pages a VM was promised from pages nobody wants until the
/// VMM maps its memory; the ledger subtracts every reservation not yet backed by a mapping, so two
/// VMs starting together never count the same free pages. With `autoReserve`, it raises
/// `nr_hugepages` (per NUMA node where asked) by what is missing, and on release gives back what it
/// added, as far as those pages are free.
///
/// Calls read and write sysfs under a lock and may block while the kernel compacts memory: call
/// them from a dedicated thread, not from the cooperative pool.
public final class HugepageLedger: Sendable {
    /// The ledger of this process; the node uses only this one.
    public static let shared = HugepageLedger()

    public let sysfs: HugepageSysfs
    private let state = Mutex(State())

    private struct Key: Hashable {
        var size: HugepageSize
        var node: Int?
    }

    private struct Claim {
        var reservation: HugepageReservation
        var backed: Bool
    }

    private struct State {
        var nextID: UInt64 = 1
        var claims: [UInt64: Claim] = [:]
        /// Pages this ledger added per knob (host-wide or per node) and not yet given back.
        var added: [Key: Int] = [:]

        func pending(_ size: HugepageSize, node: Int?) -> Int {
            claims.values.reduce(0) { sum, claim in
                let need = claim.reservation.need
                guard !claim.backed, need.pageSize == size, node == nil || need.numaNode == node else { return sum }
                return sum + need.pages
            }
        }
    }

    public init(sysfs: HugepageSysfs = HugepageSysfs()) {
        self.sysfs = sysfs
    }

    /// Reserves `need` for `vm`, raising the pool when `autoReserve` allows; throws the shortage
    /// (with the count missing) otherwise.
    public func reserve(_ need: HugepageNeed, for vm: String, autoReserve: Bool) throws(HugepageError) -> HugepageReservation {
        try validate(need)
        return try state.withLock { state throws(HugepageError) -> HugepageReservation in
            var available = try self.available(need, state)
            var added = 0
            if available < need.pages {
                guard autoReserve else { throw .shortage(need: need, available: available) }
                let key = Key(size: need.pageSize, node: need.numaNode)
                added = try grow(key, by: need.pages - available)
                state.added[key, default: 0] += added
                available = try self.available(need, state)
                if available < need.pages {
                    let removed = try shrink(key, by: added)
                    state.added[key, default: 0] -= removed
                    throw .kernelShortfall(need: need, available: available)
                }
            }
            let reservation = HugepageReservation(id: state.nextID, vm: vm, need: need, addedPages: added)
            state.nextID += 1
            state.claims[reservation.id] = Claim(reservation: reservation, backed: false)
            return reservation
        }
    }

    /// Records that the VMM has mapped the reservation's memory (cloud-hypervisor maps guest
    /// memory in `vm.boot`), so the kernel's counters now account for it.
    public func markBacked(_ reservation: HugepageReservation) {
        state.withLock { $0.claims[reservation.id]?.backed = true }
    }

    /// Drops the reservation (after its VMM is gone) and gives back pages the ledger added, as
    /// far as they are free and promised to nobody. Returns how many pages went back.
    @discardableResult
    public func release(_ reservation: HugepageReservation) throws(HugepageError) -> Int {
        try state.withLock { state throws(HugepageError) -> Int in
            guard state.claims.removeValue(forKey: reservation.id) != nil else { return 0 }
            return try giveBack(reservation.need.pageSize, &state)
        }
    }

    /// Gives back every added page that has become free since the last release (pages still
    /// mapped by a VMM when its reservation was released). Returns how many went back.
    @discardableResult
    public func giveBackUnused() throws(HugepageError) -> Int {
        try state.withLock { state throws(HugepageError) -> Int in
            var returned = 0
            for size in Set(state.added.keys.map(\.size)) { returned += try giveBack(size, &state) }
            return returned
        }
    }

    private func giveBack(_ size: HugepageSize, _ state: inout State) throws(HugepageError) -> Int {
        var returned = 0
        for (key, added) in state.added where key.size == size && added > 0 {
            let spare = try available(HugepageNeed(pageSize: key.size, pages: 0, numaNode: key.node), state)
            let removed = try shrink(key, by: min(added, spare))
            state.added[key] = added - removed
            returned += removed
        }
        return returned
    }

    /// The live reservations.
    public var reservations: [HugepageReservation] {
        state.withLock { $0.claims.values.map(\.reservation).sorted { $0.id < $1.id } }
    }

    /// Pages this ledger added and still holds in the pool of `size` (all knobs).
    public func addedPages(_ size: HugepageSize) -> Int {
        state.withLock { $0.added.filter { $0.key.size == size }.values.reduce(0, +) }
    }

    /// Free pages a new reservation can count on: the kernel's free minus its promised pages,
    /// minus reservations not yet backed (host-wide, and on the node when one is asked).
    public func available(_ need: HugepageNeed) throws(HugepageError) -> Int {
        try validate(need)
        return try state.withLock { state throws(HugepageError) -> Int in try self.available(need, state) }
    }

    private func available(_ need: HugepageNeed, _ state: State) throws(HugepageError) -> Int {
        do {
            let host = try sysfs.pool(need.pageSize)
            var result = host.available - state.pending(need.pageSize, node: nil)
            if let node = need.numaNode {
                let local = try sysfs.pool(need.pageSize, node: node)
                result = min(result, local.free - state.pending(need.pageSize, node: node))
            }
            return max(0, result)
        } catch {
            throw .system(error)
        }
    }

    private func validate(_ need: HugepageNeed) throws(HugepageError) {
        let sizes: [HugepageSize]
        do { sizes = try sysfs.pageSizes() } catch { throw .system(error) }
        guard sizes.contains(need.pageSize) else { throw .unsupportedPageSize(need.pageSize, supported: sizes) }
        if let node = need.numaNode {
            let nodes: [Int]
            do { nodes = try sysfs.numaNodes() } catch { throw .system(error) }
            guard nodes.contains(node) else { throw .noSuchNode(node, nodes: nodes) }
        }
    }

    /// Raises a knob by up to `pages`; returns how many the kernel actually added.
    private func grow(_ key: Key, by pages: Int) throws(HugepageError) -> Int {
        do {
            let before = try sysfs.pool(key.size, node: key.node).total
            let after = try sysfs.setTotal(before + pages, size: key.size, node: key.node)
            return max(0, after - before)
        } catch {
            throw .system(error)
        }
    }

    /// Lowers a knob by up to `pages`; returns how many went.
    private func shrink(_ key: Key, by pages: Int) throws(HugepageError) -> Int {
        guard pages > 0 else { return 0 }
        do {
            let before = try sysfs.pool(key.size, node: key.node).total
            let after = try sysfs.setTotal(max(0, before - pages), size: key.size, node: key.node)
            return max(0, before - after)
        } catch {
            throw .system(error)
        }
    }
}
