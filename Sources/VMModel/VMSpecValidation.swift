extension VMSpec {
    /// Every problem with this specification, each with its field path and reason, in field order.
    /// An empty result means the VMM will accept the configuration built from it (host paths and
    /// host resources are the node's to check).
    public func validate() -> [SpecProblem] {
        var check = SpecChecker()
        check.identifier("name", name)
        if let id { check.identifier("id", id) }
        check.cpus(cpus)
        check.memory(memory)
        check.payload(payload)
        check.devices(self)
        check.console("serial", serial, socketAllowed: true)
        check.console("console", console, socketAllowed: false)
        if !RNGSpec.allowedSources.contains(rng.source) {
            let allowed = RNGSpec.allowedSources.sorted().joined(separator: ", ")
            check.add("rng.source", "\"\(rng.source)\" is not one of \(allowed)")
        }
        if let vsock {
            check.range("vsock.cid", vsock.cid, VMSpecLimits.vsockCIDs)
            if let socket = vsock.socket { check.path("vsock.socket", socket) }
        }
        return check.problems
    }
}

/// Collects problems; one method per part of the specification.
struct SpecChecker {
    private(set) var problems: [SpecProblem] = []

    mutating func add(_ field: String, _ reason: String) {
        problems.append(SpecProblem(field: field, reason: reason))
    }

    mutating func identifier(_ field: String, _ value: String) {
        if let reason = SpecIdentifier.problem(value) { add(field, reason) }
    }

    mutating func path(_ field: String, _ value: String) {
        if let reason = SpecPath.problem(value) { add(field, reason) }
    }

    mutating func range(_ field: String, _ value: Int, _ range: ClosedRange<Int>) {
        if value < range.lowerBound {
            add(field, value < 0 && range.lowerBound == 0 ? "\(value) is negative" : "\(value) is below \(range.lowerBound)")
        } else if value > range.upperBound {
            add(field, "\(value) is above \(range.upperBound)")
        }
    }

    mutating func queueSize(_ field: String, _ value: Int, minimum: Int) {
        if value < minimum || value > VMSpecLimits.maxQueueSize {
            range(field, value, minimum...VMSpecLimits.maxQueueSize)
        } else if value & (value - 1) != 0 {
            add(field, "\(value) is not a power of two")
        }
    }

    // MARK: CPUs

    mutating func cpus(_ cpus: CPUSpec) {
        range("cpus.boot_vcpus", cpus.bootVCPUs, 1...VMSpecLimits.maxVCPUs)
        if cpus.maxVCPUs < 1 {
            add("cpus.max_vcpus", "\(cpus.maxVCPUs) is below 1")
        } else if cpus.maxVCPUs < cpus.bootVCPUs {
            add("cpus.max_vcpus", "\(cpus.maxVCPUs) is below boot_vcpus (\(cpus.bootVCPUs))")
        } else if cpus.maxVCPUs > VMSpecLimits.maxVCPUs {
            add("cpus.max_vcpus", "\(cpus.maxVCPUs) is above \(VMSpecLimits.maxVCPUs)")
        }
        if let topology = cpus.topology { self.topology(topology, maxVCPUs: cpus.maxVCPUs) }
        var pinned: [Int: Int] = [:]
        for (index, entry) in cpus.affinity.enumerated() {
            let field = "cpus.affinity[\(index)]"
            if entry.vcpu < 0 {
                add("\(field).vcpu", "\(entry.vcpu) is negative")
            } else if entry.vcpu >= cpus.maxVCPUs {
                add("\(field).vcpu", "\(entry.vcpu) is not below max_vcpus (\(cpus.maxVCPUs))")
            } else if let earlier = pinned[entry.vcpu] {
                add("\(field).vcpu", "vCPU \(entry.vcpu) is already pinned by cpus.affinity[\(earlier)]")
            } else {
                pinned[entry.vcpu] = index
            }
            if entry.hostCPUs.isEmpty { add("\(field).host_cpus", "is empty") }
            for (cpuIndex, cpu) in entry.hostCPUs.enumerated() where cpu < 0 {
                add("\(field).host_cpus[\(cpuIndex)]", "\(cpu) is negative")
            }
        }
    }

    private mutating func topology(_ topology: CPUTopologySpec, maxVCPUs: Int) {
        let parts = [("threads_per_core", topology.threadsPerCore), ("cores_per_die", topology.coresPerDie),
                     ("dies_per_package", topology.diesPerPackage), ("packages", topology.packages)]
        var valid = true
        for (name, value) in parts where value < 1 {
            add("cpus.topology.\(name)", "\(value) is below 1")
            valid = false
        }
        if topology.threadsPerCore > VMSpecLimits.maxThreadsPerCore {
            add("cpus.topology.threads_per_core", "\(topology.threadsPerCore) is above \(VMSpecLimits.maxThreadsPerCore)")
        }
        guard valid else { return }
        var product = 1
        var overflow = false
        for (_, value) in parts {
            let (next, didOverflow) = product.multipliedReportingOverflow(by: value)
            product = next
            overflow = overflow || didOverflow
        }
        if overflow || product != maxVCPUs {
            let shown = overflow ? "more than \(Int.max)" : "\(product)"
            add("cpus.topology", "threads_per_core × cores_per_die × dies_per_package × packages is \(shown), "
                + "not max_vcpus (\(maxVCPUs))")
        }
    }

    // MARK: Memory and payload

    mutating func memory(_ memory: MemorySpec) {
        let alignment = VMSpecLimits.memoryAlignment
        if memory.size.bytes < alignment.bytes {
            add("memory.size", "\(memory.size) is below \(alignment)")
        } else if memory.size.bytes % alignment.bytes != 0 {
            add("memory.size", "\(memory.size.bytes) bytes is not a multiple of \(alignment)")
        }
        if let hotplug = memory.hotplugSize {
            if hotplug.bytes == 0 {
                add("memory.hotplug_size", "is zero (omit it for no hotplug)")
            } else if hotplug.bytes % alignment.bytes != 0 {
                add("memory.hotplug_size", "\(hotplug.bytes) bytes is not a multiple of \(alignment)")
            }
        }
        if let pageSize = memory.hugepageSize {
            if !memory.hugepages {
                add("memory.hugepage_size", "only with memory.hugepages")
            } else if !VMSpecLimits.hugepageSizes.contains(pageSize) {
                add("memory.hugepage_size", "\(pageSize) is not 2 MiB or 1 GiB")
            }
        }
        let pageSize = memory.effectiveHugepageSize
        if memory.hugepages, VMSpecLimits.hugepageSizes.contains(pageSize), pageSize > alignment {
            if memory.size.bytes >= alignment.bytes, memory.size.bytes % pageSize.bytes != 0 {
                add("memory.size", "\(memory.size) is not a multiple of the \(pageSize) hugepage size")
            }
            if let hotplug = memory.hotplugSize, hotplug.bytes > 0, hotplug.bytes % pageSize.bytes != 0 {
                add("memory.hotplug_size", "\(hotplug) is not a multiple of the \(pageSize) hugepage size")
            }
        }
        if memory.shared && memory.mergeable {
            add("memory.mergeable", "not allowed with memory.shared")
        }
    }

    mutating func payload(_ payload: PayloadSpec) {
        if payload.kernel == nil && payload.firmware == nil {
            add("payload", "needs a kernel or a firmware")
        }
        if payload.kernel != nil && payload.firmware != nil {
            add("payload.firmware", "not together with payload.kernel")
        }
        if let kernel = payload.kernel { path("payload.kernel", kernel) }
        if let firmware = payload.firmware { path("payload.firmware", firmware) }
        if let initramfs = payload.initramfs {
            path("payload.initramfs", initramfs)
            if payload.kernel == nil { add("payload.initramfs", "only with payload.kernel") }
        }
        if let cmdline = payload.cmdline {
            if payload.kernel == nil { add("payload.cmdline", "only with payload.kernel") }
            if cmdline.utf8.count > VMSpecLimits.maxCmdlineBytes {
                add("payload.cmdline", "\(cmdline.utf8.count) bytes is above \(VMSpecLimits.maxCmdlineBytes)")
            }
            if cmdline.utf8.contains(0) { add("payload.cmdline", "contains a NUL byte") }
        }
    }

    // MARK: Devices

    mutating func devices(_ spec: VMSpec) {
        var owners: [String: String] = [:]
        func claim(_ id: String, by field: String, into checker: inout SpecChecker) {
            guard SpecIdentifier.problem(id) == nil else { return }
            if let owner = owners[id] {
                checker.add("\(field).id", "\"\(id)\" is already used by \(owner)")
            } else {
                owners[id] = field
            }
        }
        for (index, group) in spec.rateLimitGroups.enumerated() {
            let field = "rate_limit_groups[\(index)]"
            identifier("\(field).id", group.id)
            claim(group.id, by: field, into: &self)
            rateLimiter("\(field).rate_limiter", group.rateLimiter)
        }
        let groupIDs = Set(spec.rateLimitGroups.map(\.id))
        let sharedMemory = spec.memory.shared || spec.memory.hugepages
        for (index, disk) in spec.disks.enumerated() {
            let field = "disks[\(index)]"
            identifier("\(field).id", disk.id)
            claim(disk.id, by: field, into: &self)
            self.disk(field, disk, bootVCPUs: spec.cpus.bootVCPUs, groupIDs: groupIDs, sharedMemory: sharedMemory)
        }
        var macs: [MACAddress: String] = [:]
        var passthruParents: [String: String] = [:]
        var macvtapParents: [String: String] = [:]
        for (index, nic) in spec.nics.enumerated() {
            let field = "nics[\(index)]"
            identifier("\(field).id", nic.id)
            claim(nic.id, by: field, into: &self)
            self.nic(field, nic, bootVCPUs: spec.cpus.bootVCPUs, sharedMemory: sharedMemory)
            if let text = nic.mac, let mac = MACAddress(text) {
                if let owner = macs[mac] {
                    add("\(field).mac", "\(mac) is already used by \(owner)")
                } else {
                    macs[mac] = field
                }
            }
            if nic.kind == .macvtap, let parent = nic.parent {
                if let owner = passthruParents[parent] {
                    add("\(field).parent", "\"\(parent)\" is taken in passthru mode by \(owner)")
                } else if nic.effectiveMode == .passthru, let owner = macvtapParents[parent] {
                    add("\(field).mode", "passthru needs \"\(parent)\" to itself, but \(owner) uses it")
                }
                if nic.effectiveMode == .passthru { passthruParents[parent] = passthruParents[parent] ?? field }
                macvtapParents[parent] = macvtapParents[parent] ?? field
            }
        }
    }

    private mutating func disk(_ field: String, _ disk: DiskSpec, bootVCPUs: Int, groupIDs: Set<String>,
                               sharedMemory: Bool) {
        if disk.vhostUser {
            if disk.vhostSocket == nil { add("\(field).vhost_socket", "required with vhost_user") }
            if disk.path != nil { add("\(field).path", "not allowed with vhost_user") }
            if disk.rateLimiter != nil { add("\(field).rate_limiter", "not supported with vhost_user") }
            if disk.rateLimitGroup != nil { add("\(field).rate_limit_group", "not supported with vhost_user") }
            if !sharedMemory {
                add("\(field).vhost_user", "needs shared guest memory (memory.shared or memory.hugepages)")
            }
        } else {
            if disk.path == nil { add("\(field).path", "is required") }
            if disk.vhostSocket != nil { add("\(field).vhost_socket", "only with vhost_user") }
        }
        if let path = disk.path { self.path("\(field).path", path) }
        if let socket = disk.vhostSocket { self.path("\(field).vhost_socket", socket) }
        if disk.numQueues < 1 {
            add("\(field).num_queues", "\(disk.numQueues) is below 1")
        } else if bootVCPUs >= 1, disk.numQueues > bootVCPUs {
            add("\(field).num_queues", "\(disk.numQueues) is above cpus.boot_vcpus (\(bootVCPUs))")
        }
        queueSize("\(field).queue_size", disk.queueSize, minimum: VMSpecLimits.minBlockQueueSize)
        if let limiter = disk.rateLimiter { rateLimiter("\(field).rate_limiter", limiter) }
        if let group = disk.rateLimitGroup {
            if disk.rateLimiter != nil {
                add("\(field).rate_limit_group", "not together with rate_limiter")
            }
            if !groupIDs.contains(group) {
                add("\(field).rate_limit_group", "\"\(group)\" is not an id in rate_limit_groups")
            }
        }
        range("\(field).pci_segment", disk.pciSegment, 0...(VMSpecLimits.pciSegments - 1))
        if let serial = disk.serial, serial.utf8.count > VMSpecLimits.maxDiskSerialBytes {
            add("\(field).serial", "\(serial.utf8.count) bytes is above \(VMSpecLimits.maxDiskSerialBytes)")
        }
    }

    private mutating func nic(_ field: String, _ nic: NICSpec, bootVCPUs: Int, sharedMemory: Bool) {
        func only(_ name: String, _ present: Bool, for kind: NICKind) {
            if present && nic.kind != kind { add("\(field).\(name)", "only for kind \(kind.rawValue)") }
        }
        only("bridge", nic.bridge != nil, for: .tap)
        only("parent", nic.parent != nil, for: .macvtap)
        only("mode", nic.mode != nil, for: .macvtap)
        only("vhost_socket", nic.vhostSocket != nil, for: .vhostUser)
        only("vhost_mode", nic.vhostMode != nil, for: .vhostUser)
        if let bridge = nic.bridge, let reason = InterfaceNameRule.problem(bridge) { add("\(field).bridge", reason) }
        if let parent = nic.parent, let reason = InterfaceNameRule.problem(parent) { add("\(field).parent", reason) }
        switch nic.kind {
        case .tap:
            break
        case .macvtap:
            if nic.parent == nil { add("\(field).parent", "required for kind macvtap") }
        case .vhostUser:
            if nic.vhostSocket == nil { add("\(field).vhost_socket", "required for kind vhost-user") }
            if nic.hostMAC != nil { add("\(field).host_mac", "not for kind vhost-user (the backend owns the host side)") }
            if nic.rateLimiter != nil { add("\(field).rate_limiter", "not supported for kind vhost-user") }
            if nic.iommu { add("\(field).iommu", "not supported for kind vhost-user") }
            if !sharedMemory {
                add("\(field).kind", "vhost-user needs shared guest memory (memory.shared or memory.hugepages)")
            }
        }
        if let socket = nic.vhostSocket { path("\(field).vhost_socket", socket) }
        let mac = macAddress("\(field).mac", nic.mac)
        let hostMAC = macAddress("\(field).host_mac", nic.hostMAC)
        if let mac, let hostMAC, mac == hostMAC { add("\(field).host_mac", "\(hostMAC) is the same as mac") }
        if let mtu = nic.mtu {
            if nic.kind == .vhostUser, VMSpecLimits.mtuRange.contains(mtu), mtu < VMSpecLimits.vhostUserMinMTU {
                add("\(field).mtu", "\(mtu) is below \(VMSpecLimits.vhostUserMinMTU), cloud-hypervisor's minimum for vhost-user")
            }
            range("\(field).mtu", mtu, VMSpecLimits.mtuRange)
        }
        if nic.numQueues < 2 {
            add("\(field).num_queues", "\(nic.numQueues) is below 2 (one RX and one TX queue)")
        } else if nic.numQueues % 2 != 0 {
            add("\(field).num_queues", "\(nic.numQueues) is odd (queues come in RX/TX pairs)")
        } else if bootVCPUs >= 1, nic.numQueues / 2 > bootVCPUs {
            add("\(field).num_queues", "\(nic.numQueues) is \(nic.numQueues / 2) queue pairs, above cpus.boot_vcpus (\(bootVCPUs))")
        }
        queueSize("\(field).queue_size", nic.queueSize, minimum: 2)
        if !nic.offloadCsum {
            if nic.offloadTSO { add("\(field).offload_tso", "needs offload_csum") }
            if nic.offloadUFO { add("\(field).offload_ufo", "needs offload_csum") }
        }
        if let limiter = nic.rateLimiter { rateLimiter("\(field).rate_limiter", limiter) }
        range("\(field).pci_segment", nic.pciSegment, 0...(VMSpecLimits.pciSegments - 1))
    }

    private mutating func macAddress(_ field: String, _ text: String?) -> MACAddress? {
        guard let text else { return nil }
        guard let mac = MACAddress(text) else {
            add(field, "\"\(text)\" is not a MAC address (six hex pairs separated by colons)")
            return nil
        }
        if mac.isZero {
            add(field, "\(mac) is the all-zero address")
        } else if mac.isMulticast {
            add(field, "\(mac) is a multicast address")
        }
        return mac
    }

    mutating func rateLimiter(_ field: String, _ limiter: RateLimiterSpec) {
        if limiter.bandwidth == nil && limiter.ops == nil {
            add(field, "needs bandwidth or ops")
        }
        for (name, bucket) in [("bandwidth", limiter.bandwidth), ("ops", limiter.ops)] {
            guard let bucket else { continue }
            if bucket.size < 1 { add("\(field).\(name).size", "\(bucket.size) is below 1") }
            if bucket.refillTime < 1 { add("\(field).\(name).refill_time", "\(bucket.refillTime) is below 1") }
            if let burst = bucket.oneTimeBurst, burst < 0 {
                add("\(field).\(name).one_time_burst", "\(burst) is negative")
            }
        }
    }

    // MARK: Serial and console

    mutating func console(_ field: String, _ console: ConsoleSpec, socketAllowed: Bool) {
        switch console.mode {
        case .file, .socket:
            if console.path == nil { add("\(field).path", "required for mode \(console.mode.rawValue)") }
        case .off, .pty, .tty, .null:
            if console.path != nil { add("\(field).path", "only for modes file and socket") }
        }
        if console.mode == .socket && !socketAllowed {
            add("\(field).mode", "socket is only supported for the serial port")
        }
        if let path = console.path { self.path("\(field).path", path) }
    }
}
