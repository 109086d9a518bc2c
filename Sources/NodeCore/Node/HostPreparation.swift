import Dispatch
public import LinuxSys
public import NetPlumbing
public import VMModel
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Why the host could not be prepared for a VM. Nothing prepared is left behind.
public enum HostPreparationFailure: Error, Sendable, CustomStringConvertible {
    case files(HostPreparationError)
    case hugepages(HugepageError)
    case cgroup(CgroupError)
    /// A NIC's host device; `field` is e.g. `nics[1]`.
    case network(field: String, NetPlumbingError)

    public var description: String {
        switch self {
        case .files(let error): "\(error)"
        case .hugepages(let error): "\(error)"
        case .cgroup(let error): "cgroup: \(error)"
        case .network(let field, let error): "\(field): \(error)"
        }
    }
}

/// A host link made for one NIC, as recorded durably (for release after a node restart).
public struct PreparedLink: Hashable, Sendable, Codable {
    public let nicID: String
    public let name: String
    public let kind: NICKind
    /// The MACVTAP's private device node directory.
    public let deviceDirectory: String?
}

/// What a ``PreparedHost`` holds, durably: enough to release it from a restarted node.
public struct PreparedHostRecord: Hashable, Sendable, Codable {
    public let vmID: String
    public let runtimeRoot: String
    public let cgroupName: String?
    public let links: [PreparedLink]
}

/// The host resources of one VM boot: runtime directory, hugepage reservation, per-boot channel
/// directory, cgroup with limits, NIC links with their queue descriptors. ``release()`` undoes all
/// of it in reverse order, idempotently; the runtime directory itself stays (its logs outlive a
/// boot) until the VM is deleted.
public final class PreparedHost: Sendable {
    public let vmID: String
    public let runtime: VMRuntimeDirectory
    public let cgroup: VMCgroup?
    /// The NICs and links held now (boot NICs plus hot-plugged ones).
    public var nics: [HostNIC] { devices.withLock { $0.nics } }
    public var links: [PreparedLink] { devices.withLock { $0.links } }
    private let devices: Mutex<(nics: [HostNIC], links: [PreparedLink])>
    public let hugepages: PreparedHugepages?
    public let vhostUser: [VhostUserEndpoint]
    private let queueDescriptors: DescriptorBag
    private let namespace: NetworkNamespace
    private let ledger: HugepageLedger
    private let released = Mutex(false)

    init(vmID: String, runtime: VMRuntimeDirectory, cgroup: VMCgroup?, nics: [HostNIC], links: [PreparedLink],
         hugepages: PreparedHugepages?, vhostUser: [VhostUserEndpoint], queueDescriptors: DescriptorBag,
         namespace: NetworkNamespace, ledger: HugepageLedger) {
        self.vmID = vmID
        self.runtime = runtime
        self.cgroup = cgroup
        devices = Mutex((nics, links))
        self.hugepages = hugepages
        self.vhostUser = vhostUser
        self.queueDescriptors = queueDescriptors
        self.namespace = namespace
        self.ledger = ledger
    }

    /// What a restarted node needs to release these resources.
    public var record: PreparedHostRecord {
        PreparedHostRecord(vmID: vmID, runtimeRoot: runtime.root, cgroupName: cgroup?.name, links: links)
    }

    /// The per-boot directory holding the VMM's channels (control socket, event and console FIFOs).
    public var channelDirectory: String { HostPreparation.channelDirectory(runtime) }

    /// Rebuilds the releasable part of a host prepared by a previous node instance (no queue
    /// descriptors: the running VMM holds its own; no hugepage reservation: the ledger is per
    /// node instance).
    public convenience init(restoring record: PreparedHostRecord, configuration: NodeConfiguration) throws(HostPreparationFailure) {
        let runtime: VMRuntimeDirectory
        do { runtime = try VMRuntimeDirectory(vmID: record.vmID, root: record.runtimeRoot) } catch { throw .files(error) }
        var cgroup: VMCgroup?
        if let name = record.cgroupName {
            do { cgroup = try configuration.cgroups().open(name: name) } catch { throw .cgroup(error) }
        }
        self.init(vmID: record.vmID, runtime: runtime, cgroup: cgroup, nics: [], links: record.links, hugepages: nil,
                  vhostUser: [], queueDescriptors: DescriptorBag(), namespace: configuration.networkNamespace,
                  ledger: configuration.hugepageLedger)
    }

    /// Makes the host side of a NIC hot-plugged into the running VM (TAP or MACVTAP, queues open).
    public func addNIC(_ nic: NICSpec, field: String, configuration: NodeConfiguration) async throws(HostPreparationFailure) -> HostNIC {
        var made: [PreparedLink] = []
        do {
            let host = try await HostPreparation.prepareNIC(nic, field: field, vmID: vmID, runtime: runtime,
                                                            configuration: configuration, queues: queueDescriptors,
                                                            links: &made)
            devices.withLock { devices in
                devices.nics.append(host)
                devices.links += made
            }
            return host
        } catch {
            for link in made {
                try? await NetPlumbing().delete(link.name, deviceDirectory: link.deviceDirectory, in: namespace)
            }
            throw error
        }
    }

    /// Deletes the host side of NIC `id` (its queues closed, its link deleted); false when unknown.
    @discardableResult
    public func removeNIC(id: String) async -> Bool {
        let removed = devices.withLock { devices -> (HostNIC?, [PreparedLink]) in
            let nic = devices.nics.first { $0.device.id == id }
            devices.nics.removeAll { $0.device.id == id }
            let links = devices.links.filter { $0.nicID == id }
            devices.links.removeAll { $0.nicID == id }
            return (nic, links)
        }
        guard let nic = removed.0 else { return false }
        for queue in 0..<nic.queueDescriptors.count {
            _ = queueDescriptors.take("\(id)#\(queue)")
        }
        for link in removed.1 {
            try? await NetPlumbing().delete(link.name, deviceDirectory: link.deviceDirectory, in: namespace)
            if let directory = link.deviceDirectory { _ = rmdir(directory) }
        }
        return true
    }

    /// Undoes the preparation in reverse order: queue descriptors, links (and MACVTAP nodes),
    /// cgroup, channel directory, hugepages. Runs once; later calls return at once. Returns the
    /// problems met (each step is attempted whatever the others did).
    @discardableResult
    public func release() async -> [String] {
        let first = released.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return [] }
        var problems: [String] = []
        queueDescriptors.closeAll()
        let plumbing = NetPlumbing()
        let links = self.links
        for link in links.reversed() {
            do {
                try await plumbing.delete(link.name, deviceDirectory: link.deviceDirectory, in: namespace)
            } catch {
                if case .linkNotFound = error {} else { problems.append("delete \(link.name): \(error)") }
            }
        }
        let cgroup = self.cgroup
        let runtime = self.runtime
        let hugepages = self.hugepages
        let ledger = self.ledger
        problems += await HostPreparation.onHostThread { () -> [String] in
            var problems: [String] = []
            if let cgroup {
                do { try cgroup.remove() } catch { problems.append("remove cgroup \(cgroup.name): \(error)") }
            }
            do { try HostFiles.removeTree(HostPreparation.channelDirectory(runtime)) } catch {
                problems.append("remove \(HostPreparation.channelDirectory(runtime)): \(error)")
            }
            for link in links {
                if let directory = link.deviceDirectory { _ = rmdir(directory) }
            }
            if let hugepages {
                do { _ = try ledger.release(hugepages.reservation) } catch { problems.append("\(error)") }
            }
            return problems
        }
        return problems
    }
}

/// Turns a validated ``VMSpec`` and the node's configuration into a ``PreparedHost``; a failure
/// midway undoes what was done.
public enum HostPreparation {
    /// The per-boot channel directory of a runtime directory (root-only; the VMM gets descriptors).
    public static func channelDirectory(_ runtime: VMRuntimeDirectory) -> String { runtime.path + "/boot" }

    /// The host link name of NIC `nicID` of VM `vmID`: `qxt` (TAP) or `qxm` (MACVTAP) and eight
    /// hex digits of a hash of both ids — stable across boots and node restarts, 11 characters.
    public static func linkName(vmID: String, nicID: String, kind: NICKind) -> String {
        var hash: UInt32 = 2_166_136_261
        for byte in (vmID + "/" + nicID).utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        let hex = String(hash, radix: 16)
        return (kind == .macvtap ? "qxm" : "qxt") + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// A stable, locally administered unicast MAC for a NIC whose specification gives none.
    public static func generatedMAC(vmID: String, nicID: String) -> MACAddress {
        var hash: UInt64 = 14_695_981_039_346_656_037
        for byte in (vmID + "#" + nicID).utf8 {
            hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211
        }
        let bytes = (0..<5).map { UInt8(truncatingIfNeeded: hash >> (8 * UInt64($0))) }
        return MACAddress(octets: [0x02] + bytes)
    }

    /// The cgroup limits of a VM: memory = guest RAM (not when hugepages back it: those are
    /// accounted by hugetlb) plus hotplug plus the VMM's overhead; CPU = its max vCPUs plus one for
    /// the VMM's own threads; pids from the configuration.
    public static func cgroupLimits(for spec: VMSpec, configuration: NodeConfiguration) -> CgroupLimits {
        let guest = spec.memory.hugepages ? 0 : UInt64(spec.memory.size.bytes) + UInt64(spec.memory.hotplugSize?.bytes ?? 0)
        let period = CgroupLimits.defaultCPUPeriod
        return CgroupLimits(cpuQuota: UInt64(spec.cpus.maxVCPUs + 1) * period, cpuPeriod: period,
                            memoryMax: guest + configuration.vmmMemoryOverhead, pidsMax: configuration.pidsMax)
    }

    /// Prepares the host for one boot of `spec` (validated, paths resolved) as VM `vmID`.
    public static func prepare(_ spec: VMSpec, vmID: String, configuration: NodeConfiguration) async throws(HostPreparationFailure) -> PreparedHost {
        let owner = VMRuntimeDirectory.Owner(uid: configuration.vmmUser.uid, gid: configuration.vmmUser.gid)
        let ledger = configuration.hugepageLedger
        let local: (VMRuntimeDirectory, [VhostUserEndpoint], PreparedHugepages?, VMCgroup?)
        let result: Result<(VMRuntimeDirectory, [VhostUserEndpoint], PreparedHugepages?, VMCgroup?), HostPreparationFailure>
        result = await onHostThread { () -> Result<(VMRuntimeDirectory, [VhostUserEndpoint], PreparedHugepages?, VMCgroup?), HostPreparationFailure> in
            let runtime: VMRuntimeDirectory
            let endpoints: [VhostUserEndpoint]
            do throws(HostPreparationError) {
                runtime = try VMRuntimeDirectory(vmID: vmID, root: configuration.runtimeRoot)
                try runtime.create(vmmOwner: owner)
                endpoints = try runtime.vhostUserEndpoints(for: spec)
            } catch {
                return .failure(.files(error))
            }
            let hugepages: PreparedHugepages?
            do throws(HugepageError) {
                hugepages = try ledger.prepare(for: spec, vm: vmID, settings: configuration.hugepages)
            } catch {
                return .failure(.hugepages(error))
            }
            do throws(SystemError) {
                try HostFiles.removeTree(channelDirectory(runtime))
                try HostFiles.ownedDirectory(channelDirectory(runtime), mode: 0o700, uid: 0, gid: 0)
            } catch {
                if let hugepages { _ = try? ledger.release(hugepages.reservation) }
                return .failure(.files(.system(error)))
            }
            do throws(CgroupError) {
                let manager = try configuration.cgroups()
                let group = try manager.create(name: vmID, limits: cgroupLimits(for: spec, configuration: configuration))
                return .success((runtime, endpoints, hugepages, group))
            } catch {
                try? HostFiles.removeTree(channelDirectory(runtime))
                if let hugepages { _ = try? ledger.release(hugepages.reservation) }
                return .failure(.cgroup(error))
            }
        }
        local = try result.get()
        let (runtime, endpoints, hugepages, cgroup) = local

        let queues = DescriptorBag()
        var nics: [HostNIC] = []
        var links: [PreparedLink] = []
        for (index, nic) in spec.nics.enumerated() where nic.kind != .vhostUser {
            do {
                let hostNIC = try await prepareNIC(nic, field: "nics[\(index)]", vmID: vmID, runtime: runtime,
                                                           configuration: configuration, queues: queues, links: &links)
                nics.append(hostNIC)
            } catch {
                let partial = PreparedHost(vmID: vmID, runtime: runtime, cgroup: cgroup, nics: nics, links: links,
                                           hugepages: hugepages, vhostUser: endpoints, queueDescriptors: queues,
                                           namespace: configuration.networkNamespace, ledger: ledger)
                await partial.release()
                throw error
            }
        }
        return PreparedHost(vmID: vmID, runtime: runtime, cgroup: cgroup, nics: nics, links: links, hugepages: hugepages,
                            vhostUser: endpoints, queueDescriptors: queues, namespace: configuration.networkNamespace,
                            ledger: ledger)
    }

    /// Makes one TAP or MACVTAP and opens its queues. The link is recorded in `links` as soon as it
    /// exists, so a failure afterwards still deletes it.
    static func prepareNIC(_ nic: NICSpec, field: String, vmID: String, runtime: VMRuntimeDirectory,
                                   configuration: NodeConfiguration, queues: DescriptorBag,
                                   links: inout [PreparedLink]) async throws(HostPreparationFailure) -> HostNIC {
        let plumbing = NetPlumbing()
        let namespace = configuration.networkNamespace
        let name = linkName(vmID: vmID, nicID: nic.id, kind: nic.kind)
        let mac = nic.mac.flatMap(MACAddress.init) ?? generatedMAC(vmID: vmID, nicID: nic.id)
        let pairs = max(1, nic.numQueues / 2)
        let tag: LinkTag
        do { tag = try LinkTag(vm: vmID, nic: nic.id) } catch { throw .network(field: field, error) }
        var descriptors: [Int32] = []
        let link: PreparedLink
        do throws(NetPlumbingError) {
            switch nic.kind {
            case .tap:
                var offloads: TapOffloads = []
                if nic.offloadCsum { offloads.insert(.checksum) }
                if nic.offloadTSO, nic.offloadCsum { offloads.formUnion([.tso4, .tso6, .tsoECN]) }
                if nic.offloadUFO, nic.offloadCsum { offloads.insert(.ufo) }
                // Always multi-queue: a single-queue TAP refuses a second attachment (EBUSY) while the
                // fd that created it is still held by a child the node is forking at that moment for
                // another VM (until its exec closes it); a multi-queue TAP accepts our queue anyway.
                let request = TapRequest(name: name, tag: tag, queues: pairs, multiQueue: true,
                                         owner: configuration.vmmUser.uid, group: configuration.vmmUser.gid,
                                         vnetHeaderSize: 12, offloads: offloads, mtu: nic.mtu, mac: nic.hostMAC,
                                         master: nic.bridge)
                link = PreparedLink(nicID: nic.id, name: name, kind: .tap, deviceDirectory: nil)
                _ = try await plumbing.createTap(request, in: namespace)
                links.append(link)
                descriptors = try await plumbing.openTapQueues(name, count: pairs, in: namespace).takeAll()
            case .macvtap:
                let directory = runtime.path + "/dev-" + nic.id
                link = PreparedLink(nicID: nic.id, name: name, kind: .macvtap, deviceDirectory: directory)
                if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                    throw NetPlumbingError.system(SystemError("mkdir \(directory)", errno: errno))
                }
                let request = MacvtapRequest(name: name, tag: tag, parent: nic.parent ?? "",
                                             mode: .init(rawValue: (nic.effectiveMode ?? .bridge).rawValue) ?? .bridge,
                                             mac: mac.description, mtu: nic.mtu, deviceDirectory: directory)
                links.append(link)
                let made = try await plumbing.createMacvtap(request, in: namespace)
                descriptors = try await plumbing.openMacvtapQueues(made, count: pairs, in: namespace).takeAll()
            case .vhostUser:
                throw NetPlumbingError.invalidArgument(field: "kind", value: "vhost-user", reason: "has no host link")
            }
        } catch {
            throw .network(field: field, error)
        }
        for (queue, fd) in descriptors.enumerated() {
            queues.put("\(nic.id)#\(queue)", FileDescriptor(adopting: fd))
        }
        let device = PreparedNIC(id: nic.id, interfaceName: name, queuePairs: pairs, mac: mac)
        return HostNIC(device: device, kind: nic.kind, queueDescriptors: descriptors)
    }

    /// Runs blocking host work (sysfs, cgroupfs, directory trees) off the cooperative pool.
    static func onHostThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            hostQueue.async { continuation.resume(returning: body()) }
        }
    }
}

/// Blocking host work of VM preparation and release (short file-system calls).
private let hostQueue = DispatchQueue(label: "qarax.host-preparation", attributes: .concurrent)
