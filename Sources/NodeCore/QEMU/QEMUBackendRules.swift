public import VMModel

/// QEMU's own limits, each with where it comes from.
public enum QEMULimits {
    /// `VIRTQUEUE_MAX_SIZE`: no virtio queue is larger in QEMU.
    public static let maxQueueSize = 1024
    /// virtio-net's `rx_queue_size` range (`VIRTIO_NET_RX_QUEUE_MIN_SIZE` … `VIRTQUEUE_MAX_SIZE`).
    public static let netRxQueueSizes = 256...1024
    /// The TX queue of a NIC whose backend is not vhost-user is fixed at this size.
    public static let netTapTxQueueSize = 256
    /// Memory hotplug slots reserved on q35 when `memory.hotplug_size` is set.
    public static let memorySlots = 8
}

extension QEMUCommandLine {
    /// Every problem that keeps QEMU from running `spec` as written on `machine`: the specification's
    /// own (``VMSpec/validate()``) followed by what the qemu backend cannot honour, each naming the
    /// field and the backend.
    public static func validate(_ spec: VMSpec, machine: QEMUMachine) -> [SpecProblem] {
        var rules = QEMUBackendRules(machine: machine)
        rules.check(spec)
        return spec.validate() + rules.problems
    }

    /// The machine a launch uses: the configured one, else q35 when anything needs hotplug.
    public static func machine(for spec: VMSpec, configuration: QEMULaunchConfiguration) -> QEMUMachine {
        if let machine = configuration.machine { return machine }
        let needsHotplug = configuration.pciHotplug || spec.cpus.maxVCPUs > spec.cpus.bootVCPUs
            || spec.memory.hotplugSize != nil
        return needsHotplug ? .q35 : .microvm
    }
}

/// The specification fields the qemu backend cannot honour.
struct QEMUBackendRules {
    let machine: QEMUMachine
    private(set) var problems: [SpecProblem] = []

    init(machine: QEMUMachine) {
        self.machine = machine
    }

    private mutating func unsupported(_ field: String, _ why: String? = nil) {
        let reason = "not supported by the qemu backend" + (why.map { " (\($0))" } ?? "")
        problems.append(SpecProblem(field: field, reason: reason))
    }

    private mutating func unsupportedOnMicrovm(_ field: String, _ what: String) {
        guard machine == .microvm else { return }
        unsupported(field, "\(what) needs the q35 machine; this VM runs on microvm")
    }

    mutating func check(_ spec: VMSpec) {
        if spec.cpus.kvmHyperV { unsupported("cpus.kvm_hyperv") }
        if !spec.cpus.affinity.isEmpty { unsupported("cpus.affinity", "QEMU has no vCPU pinning option") }
        if spec.cpus.maxVCPUs > spec.cpus.bootVCPUs { unsupportedOnMicrovm("cpus.max_vcpus", "CPU hotplug") }
        if let topology = spec.cpus.topology, topology.diesPerPackage > 1 {
            unsupportedOnMicrovm("cpus.topology.dies_per_package", "more than one die per package")
        }
        if spec.memory.hotplugSize != nil { unsupportedOnMicrovm("memory.hotplug_size", "memory hotplug") }
        if !spec.memory.thp && !spec.memory.hugepages {
            unsupported("memory.thp", "QEMU always advises transparent huge pages for guest RAM")
        }
        if spec.vsock != nil {
            unsupported("vsock", "QEMU's vsock is vhost-vsock to the host's AF_VSOCK, not a Unix socket proxy")
        }
        for (index, group) in spec.rateLimitGroups.enumerated() {
            rateLimiter("rate_limit_groups[\(index)].rate_limiter", group.rateLimiter)
        }
        for (index, disk) in spec.disks.enumerated() { self.disk("disks[\(index)]", disk) }
        for (index, nic) in spec.nics.enumerated() { self.nic("nics[\(index)]", nic) }
    }

    private mutating func disk(_ field: String, _ disk: DiskSpec) {
        if disk.pciSegment != 0 { unsupported("\(field).pci_segment", "QEMU has PCI segment 0 only") }
        if disk.queueSize > QEMULimits.maxQueueSize {
            unsupported("\(field).queue_size", "\(disk.queueSize) is above QEMU's virtqueue maximum \(QEMULimits.maxQueueSize)")
        }
        if let limiter = disk.rateLimiter { rateLimiter("\(field).rate_limiter", limiter) }
        if disk.vhostUser {
            if disk.readonly { unsupported("\(field).readonly", "the vhost-user backend decides") }
            if disk.direct { unsupported("\(field).direct", "the vhost-user backend decides") }
            if disk.serial != nil { unsupported("\(field).serial", "vhost-user-blk has no serial property") }
        }
    }

    private mutating func nic(_ field: String, _ nic: NICSpec) {
        if nic.pciSegment != 0 { unsupported("\(field).pci_segment", "QEMU has PCI segment 0 only") }
        if nic.rateLimiter != nil { unsupported("\(field).rate_limiter", "QEMU has no network rate limiter") }
        if nic.iommu { unsupported("\(field).iommu") }
        switch nic.kind {
        case .tap, .macvtap:
            if nic.queueSize != QEMULimits.netTapTxQueueSize {
                unsupported("\(field).queue_size",
                            "\(nic.queueSize): QEMU fixes the TX queue of a \(nic.kind.rawValue) NIC at \(QEMULimits.netTapTxQueueSize)")
            }
        case .vhostUser:
            if !QEMULimits.netRxQueueSizes.contains(nic.queueSize) {
                unsupported("\(field).queue_size",
                            "\(nic.queueSize) is outside QEMU's \(QEMULimits.netRxQueueSizes.lowerBound)…\(QEMULimits.netRxQueueSizes.upperBound)")
            }
        }
    }

    private mutating func rateLimiter(_ field: String, _ limiter: RateLimiterSpec) {
        for (name, bucket) in [("bandwidth", limiter.bandwidth), ("ops", limiter.ops)] {
            guard let bucket else { continue }
            if bucket.oneTimeBurst != nil {
                unsupported("\(field).\(name).one_time_burst", "QEMU's throttling has recurring bursts only")
            }
            guard bucket.size >= 1, bucket.refillTime >= 1 else { continue }
            if bucket.size.multipliedReportingOverflow(by: 1000).overflow {
                unsupported("\(field).\(name).size", "\(bucket.size) per \(bucket.refillTime) ms overflows a rate per second")
            } else if QEMUThrottle.perSecond(bucket) == 0 {
                unsupported("\(field).\(name).size",
                            "\(bucket.size) per \(bucket.refillTime) ms is below 1 per second, QEMU's smallest limit")
            }
        }
    }
}
