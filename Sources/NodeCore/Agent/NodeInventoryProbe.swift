import Foundation
public import Wire
#if canImport(Glibc)
import Glibc
#endif

/// What the node reports about itself: hostname, CPUs, memory, hugepages per size and NUMA node,
/// KVM, VMM backends with versions, bridges and MACVTAP-capable parents, node version. Reads
/// /proc and /sys and asks each VMM binary for its version (on a host thread).
public enum NodeInventoryProbe {
    /// The backend the node runs VMs with, and where to look for the others.
    public struct Backends: Sendable {
        public var active: VMMKind
        public var activeBinary: String
        public var searchPath: String

        public init(active: VMMKind, activeBinary: String, searchPath: String) {
            self.active = active
            self.activeBinary = activeBinary
            self.searchPath = searchPath
        }
    }

    /// Probes the host.
    public static func probe(backends: Backends, sysfs: String = "/sys") async -> WireNodeInventory {
        await HostPreparation.onHostThread { probeNow(backends: backends, sysfs: sysfs) }
    }

    static func probeNow(backends: Backends, sysfs: String) -> WireNodeInventory {
        var inventory = WireNodeInventory()
        inventory.hostname = ProcessInfo.processInfo.hostName
        inventory.cpus = UInt32(clamping: ProcessInfo.processInfo.activeProcessorCount)
        inventory.memoryBytes = ProcessInfo.processInfo.physicalMemory
        inventory.hugepages = hugepages(sysfs: sysfs)
        inventory.kvm = access("/dev/kvm", R_OK | W_OK) == 0
        inventory.kvmFlavor = ["kvm_intel", "kvm_amd", "kvm_pvm"].first { access("\(sysfs)/module/\($0)", F_OK) == 0 } ?? ""
        inventory.backends = vmmBackends(backends)
        (inventory.bridges, inventory.macvtapParents) = links(sysfs: sysfs)
        inventory.nodeVersion = NodeVersion.current
        return inventory
    }

    /// One pool per page size system-wide (NUMA node −1) and per NUMA node.
    static func hugepages(sysfs: String) -> [WireHugepagePool] {
        func pools(in directory: String, node: Int32) -> [WireHugepagePool] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            return entries.sorted().compactMap { entry -> WireHugepagePool? in
                guard entry.hasPrefix("hugepages-"), entry.hasSuffix("kB"),
                      let kib = UInt64(entry.dropFirst("hugepages-".count).dropLast(2)) else { return nil }
                var pool = WireHugepagePool()
                pool.pageSizeBytes = kib << 10
                pool.numaNode = node
                pool.total = number("\(directory)/\(entry)/nr_hugepages") ?? 0
                pool.free = number("\(directory)/\(entry)/free_hugepages") ?? 0
                return pool
            }
        }
        var all = pools(in: "\(sysfs)/kernel/mm/hugepages", node: -1)
        let nodes = (try? FileManager.default.contentsOfDirectory(atPath: "\(sysfs)/devices/system/node")) ?? []
        for entry in nodes.sorted() where entry.hasPrefix("node") {
            guard let id = Int32(entry.dropFirst(4)) else { continue }
            all += pools(in: "\(sysfs)/devices/system/node/\(entry)/hugepages", node: id)
        }
        return all
    }

    static func vmmBackends(_ backends: Backends) -> [WireVMMBackend] {
        VMMKind.allCases.compactMap { kind -> WireVMMBackend? in
            let explicit = kind == backends.active ? backends.activeBinary : nil
            let result = VMMProbe.check(kind, explicitPath: explicit, searchPath: backends.searchPath, timeout: .seconds(5))
            guard result.passed || kind == backends.active else { return nil }
            var backend = WireVMMBackend()
            backend.name = NodeWireMapping.backendName(kind)
            if case .string(let version)? = result.details["version"] { backend.version = version }
            if case .string(let path)? = result.details["path"] { backend.path = path }
            if kind == backends.active { backend.path = backends.activeBinary }
            return backend
        }
    }

    /// Bridges (with their MTU) and the links a MACVTAP can sit on (Ethernet links that are not
    /// bridges, TAPs, MACVTAPs or loopback).
    static func links(sysfs: String) -> ([WireBridge], [String]) {
        let root = "\(sysfs)/class/net"
        var bridges: [WireBridge] = []
        var parents: [String] = []
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted() {
            let link = "\(root)/\(name)"
            if access("\(link)/bridge", F_OK) == 0 {
                var bridge = WireBridge()
                bridge.name = name
                bridge.mtu = UInt32(clamping: number("\(link)/mtu") ?? 0)
                bridges.append(bridge)
                continue
            }
            let isEthernet = number("\(link)/type") == 1
            let isVirtualEnd = access("\(link)/tun_flags", F_OK) == 0 || access("\(link)/macvtap", F_OK) == 0
                || access("\(link)/brport", F_OK) == 0
            if isEthernet && !isVirtualEnd && name != "lo" { parents.append(name) }
        }
        return (bridges, parents)
    }

    static func number(_ path: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
