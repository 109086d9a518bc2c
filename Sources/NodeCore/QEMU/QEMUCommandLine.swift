public import VMModel

/// Why a QEMU command line could not be built.
public enum QEMUCommandLineError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The specification is invalid, or asks for what the qemu backend cannot do (every problem).
    case invalidSpec(SpecValidationError)
    /// A TAP or MACVTAP NIC has no host device in the launch configuration.
    case nicNotPrepared(field: String, id: String)
    /// The host device has a different number of descriptors than the NIC's queue pairs.
    case queuePairMismatch(field: String, expected: Int, prepared: Int)
    /// The launch configuration has a host device for no TAP or MACVTAP NIC of the specification.
    case unexpectedHostNIC(id: String)
    /// Both the serial port and the console go to QEMU's stdout, which only one chardev can own.
    case stdoutTwice

    public var description: String {
        switch self {
        case .invalidSpec(let error): error.description
        case .nicNotPrepared(let field, let id): "\(field): NIC \"\(id)\" has no prepared host device"
        case .queuePairMismatch(let field, let expected, let prepared):
            "\(field).num_queues: needs \(expected) queue pairs, the host device has \(prepared) descriptors"
        case .unexpectedHostNIC(let id): "host NIC \"\(id)\" is not a tap or macvtap NIC of the specification"
        case .stdoutTwice: "console.mode: tty goes to QEMU's stdout, which the serial port (tty) already uses"
        }
    }
}

/// The arguments of one `qemu-system-x86_64` process running a ``VMSpec`` (pure; no I/O).
///
/// Every part of the command line is explicit, so QEMU's defaults never decide what the guest gets:
/// - `-no-user-config -nodefaults -nographic`: no configuration files, no default NIC, VGA, serial,
///   monitor or drives.
/// - No `-no-reboot`: with it QEMU turns every reset — QMP's `system_reset` included — into a
///   shutdown, and the reboot operation would end the VM. A guest-initiated reboot resets in place
///   and is reported by a `RESET` event. A guest poweroff ends the process.
/// - `-sandbox on,…=deny`: QEMU's own seccomp filter, on top of the jail's.
/// - The QMP monitor is served on a listening socket the node bound before spawn
///   (`-chardev socket,fd=N,server=on,wait=off`).
/// - `-M microvm,x-option-roms=off,pit=off,pic=off,rtc=off`: no option ROMs, legacy timers or PIC;
///   a Linux guest uses the LAPIC timer and IOAPIC and finds its virtio-mmio devices through ACPI.
///   ACPI stays on (the default): without it `system_powerdown` has no power button to press.
///   `isa-serial` follows the specification's serial port.
/// - `mem-merge` is always explicit: QEMU merges (KSM) by default.
/// - TAP/MACVTAP NICs get the node's descriptors (`-netdev tap,fd=` / `fds=`) and `vhost=off` (the
///   VMM has no `/dev/vhost-net`); their MTU is set on the host link by the node and advertised to
///   the guest with `host_mtu`.
/// - Shared guest memory (`memory.shared`, or any vhost-user device) and hugepages use a
///   `memory-backend-memfd` (`hugetlb=on,hugetlbsize=`), which needs no hugetlbfs mount in the jail.
public struct QEMUCommandLine: Hashable, Sendable {
    /// The machine the arguments are for.
    public let machine: QEMUMachine
    /// The arguments after the program name.
    public let arguments: [String]

    /// The full argv: `binary` then ``arguments``.
    public func argv(binary: String) -> [String] { [binary] + arguments }

    /// Builds the command line for `spec`, after checking it (``validate(_:machine:)``) and the host
    /// NICs of `configuration` against its NICs.
    public static func build(
        for spec: VMSpec, configuration: QEMULaunchConfiguration
    ) throws(QEMUCommandLineError) -> QEMUCommandLine {
        let machine = machine(for: spec, configuration: configuration)
        var problems = validate(spec, machine: machine)
        if configuration.pciHotplug && machine == .microvm {
            problems.append(SpecProblem(field: "machine", reason: "PCI hotplug needs q35, not microvm (qemu backend)"))
        }
        guard problems.isEmpty else { throw .invalidSpec(SpecValidationError(problems: problems)) }
        if spec.serial.mode == .tty && spec.console.mode == .tty && configuration.console == .stdout {
            throw .stdoutTwice
        }
        var hostNICs = configuration.nics
        for (index, nic) in spec.nics.enumerated() where nic.kind != .vhostUser {
            let field = "nics[\(index)]"
            guard let host = hostNICs.removeValue(forKey: nic.id) else { throw .nicNotPrepared(field: field, id: nic.id) }
            guard host.fds.count == nic.numQueues / 2 else {
                throw .queuePairMismatch(field: field, expected: nic.numQueues / 2, prepared: host.fds.count)
            }
        }
        if let leftover = hostNICs.keys.sorted().first { throw .unexpectedHostNIC(id: leftover) }

        var writer = QEMUArgumentWriter(spec: spec, configuration: configuration, machine: machine)
        writer.writeAll()
        return QEMUCommandLine(machine: machine, arguments: writer.arguments)
    }
}

/// Token buckets as QEMU throttle limits.
enum QEMUThrottle {
    /// `size` per `refill_time` ms as a rate per second (rounded down; 0 means QEMU's "unlimited").
    static func perSecond(_ bucket: TokenBucketSpec) -> Int {
        bucket.size * 1000 / bucket.refillTime
    }
}

/// Escapes a value inside a QEMU option list, where `,` separates options and `,,` is a literal comma.
func qemuOptionValue(_ value: String) -> String {
    value.replacingOccurrences(of: ",", with: ",,")
}

/// Writes the arguments in a fixed order; only called with a specification that passed validation.
struct QEMUArgumentWriter {
    let spec: VMSpec
    let configuration: QEMULaunchConfiguration
    let machine: QEMUMachine
    private(set) var arguments: [String] = []

    init(spec: VMSpec, configuration: QEMULaunchConfiguration, machine: QEMUMachine) {
        self.spec = spec
        self.configuration = configuration
        self.machine = machine
    }

    private mutating func add(_ option: String, _ value: String) {
        arguments += [option, value]
    }

    private func opts(_ head: String, _ parts: [(String, String?)]) -> String {
        ([head] + parts.compactMap { key, value in value.map { "\(key)=\($0)" } }).joined(separator: ",")
    }

    private func onOff(_ flag: Bool) -> String { flag ? "on" : "off" }

    private func mebibytes(_ size: ByteSize) -> String { "\(size.bytes >> 20)M" }

    /// Device model names differ between the virtio-mmio (microvm) and PCI (q35) transports.
    private func virtio(_ base: String) -> String {
        machine == .microvm ? "\(base)-device" : "\(base)-pci"
    }

    private var hasVhostUser: Bool {
        spec.disks.contains(where: \.vhostUser) || spec.nics.contains { $0.kind == .vhostUser }
    }

    mutating func writeAll() {
        add("-name", "guest=\(qemuOptionValue(spec.name)),debug-threads=on")
        arguments += ["-no-user-config", "-nodefaults", "-nographic"]
        writeMachine()
        arguments += ["-enable-kvm"]
        add("-cpu", configuration.cpuModel)
        add("-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny")
        writeCPUs()
        writeMemory()
        writePayload()
        add("-chardev", "socket,id=qmp,fd=\(configuration.qmpListenerFD),server=on,wait=off")
        add("-mon", "chardev=qmp,mode=control")
        writeConsoles()
        add("-object", "rng-random,id=rng0,filename=\(qemuOptionValue(spec.rng.source))")
        add("-device", "\(virtio("virtio-rng")),rng=rng0,id=rng")
        writeRateLimitGroups()
        for disk in spec.disks { writeDisk(disk) }
        for nic in spec.nics { writeNIC(nic) }
        if machine == .q35 && configuration.pciHotplug {
            for port in 0..<max(0, configuration.hotplugPorts) {
                add("-device", "pcie-root-port,id=hp\(port),bus=pcie.0,chassis=\(port + 1)")
            }
        }
        if configuration.debugExit { add("-device", "isa-debug-exit,iobase=0xf4,iosize=0x04") }
    }

    private var memoryBackend: String? {
        let memory = spec.memory
        guard memory.hugepages || memory.shared || memory.prefault || hasVhostUser else { return nil }
        let share = memory.shared || hasVhostUser
        if memory.hugepages || share {
            return opts("memory-backend-memfd", [
                ("id", "mem0"), ("size", mebibytes(memory.size)),
                ("hugetlb", memory.hugepages ? "on" : nil),
                ("hugetlbsize", memory.hugepages ? mebibytes(memory.effectiveHugepageSize) : nil),
                ("share", onOff(share)), ("prealloc", onOff(memory.prefault)),
            ])
        }
        return opts("memory-backend-ram", [("id", "mem0"), ("size", mebibytes(memory.size)), ("prealloc", "on")])
    }

    private mutating func writeMachine() {
        let backend = memoryBackend != nil ? "mem0" : nil
        let merge = onOff(spec.memory.mergeable)
        switch machine {
        case .microvm:
            add("-M", opts("microvm", [
                ("x-option-roms", "off"), ("pit", "off"), ("pic", "off"), ("rtc", "off"),
                ("isa-serial", onOff(spec.serial.mode != .off)), ("mem-merge", merge), ("memory-backend", backend),
            ]))
        case .q35:
            add("-M", opts("q35", [
                ("vmport", "off"), ("sata", "off"), ("smbus", "off"), ("mem-merge", merge), ("memory-backend", backend),
            ]))
        }
    }

    private mutating func writeCPUs() {
        let cpus = spec.cpus
        var parts: [(String, String?)] = [("maxcpus", "\(cpus.maxVCPUs)")]
        if let topology = cpus.topology {
            parts += [("sockets", "\(topology.packages)"),
                      ("dies", machine == .q35 ? "\(topology.diesPerPackage)" : nil),
                      ("cores", "\(topology.coresPerDie)"), ("threads", "\(topology.threadsPerCore)")]
        }
        add("-smp", opts("\(cpus.bootVCPUs)", parts))
    }

    private mutating func writeMemory() {
        let memory = spec.memory
        var size = "size=\(mebibytes(memory.size))"
        if let hotplug = memory.hotplugSize {
            size += ",slots=\(QEMULimits.memorySlots),maxmem=\(mebibytes(ByteSize(bytes: memory.size.bytes + hotplug.bytes)))"
        }
        add("-m", size)
        if let backend = memoryBackend { add("-object", backend) }
    }

    private mutating func writePayload() {
        let payload = spec.payload
        if let firmware = payload.firmware { add("-bios", firmware) }
        if let kernel = payload.kernel { add("-kernel", kernel) }
        if let initramfs = payload.initramfs { add("-initrd", initramfs) }
        if let cmdline = payload.cmdline { add("-append", cmdline) }
    }

    private func chardev(_ id: String, _ console: ConsoleSpec) -> String? {
        switch console.mode {
        case .off: nil
        case .null: "null,id=\(id)"
        case .pty: "pty,id=\(id)"
        case .tty:
            switch configuration.console {
            case .stdout: "stdio,id=\(id),signal=off"
            case .inheritedFD(let fd): "file,id=\(id),path=/proc/self/fd/\(fd)"
            }
        case .file: "file,id=\(id),path=\(qemuOptionValue(console.path ?? ""))"
        case .socket: "socket,id=\(id),path=\(qemuOptionValue(console.path ?? "")),server=on,wait=off"
        }
    }

    private mutating func writeConsoles() {
        if let serial = chardev("serial0", spec.serial) {
            add("-chardev", serial)
            add("-serial", "chardev:serial0")
        }
        if let console = chardev("console0", spec.console) {
            add("-chardev", console)
            add("-device", "\(virtio("virtio-serial")),id=vser0")
            add("-device", "virtconsole,chardev=console0,bus=vser0.0,id=console")
        }
    }

    private func throttleGroup(_ id: String, _ limiter: RateLimiterSpec) -> String {
        opts("throttle-group", [
            ("id", id),
            ("x-bps-total", limiter.bandwidth.map { "\(QEMUThrottle.perSecond($0))" }),
            ("x-iops-total", limiter.ops.map { "\(QEMUThrottle.perSecond($0))" }),
        ])
    }

    private mutating func writeRateLimitGroups() {
        for group in spec.rateLimitGroups {
            add("-object", throttleGroup("tg-\(group.id)", group.rateLimiter))
        }
    }

    private mutating func writeDisk(_ disk: DiskSpec) {
        if disk.vhostUser {
            add("-chardev", "socket,id=chr-\(disk.id),path=\(qemuOptionValue(disk.vhostSocket ?? ""))")
            add("-device", opts(machine == .microvm ? "vhost-user-blk" : "vhost-user-blk-pci", [
                ("chardev", "chr-\(disk.id)"), ("id", disk.id),
                ("num-queues", "\(disk.numQueues)"), ("queue-size", "\(disk.queueSize)"),
            ]))
            return
        }
        let readOnly = onOff(disk.readonly)
        add("-blockdev", opts("driver=file", [
            ("node-name", "file-\(disk.id)"),
            ("filename", configuration.diskFDSets[disk.id].map { "/dev/fdset/\($0)" } ?? qemuOptionValue(disk.path ?? "")),
            ("read-only", readOnly), ("cache.direct", onOff(disk.direct)), ("aio", disk.direct ? "native" : "threads"),
        ]))
        add("-blockdev", opts("driver=raw", [("node-name", "fmt-\(disk.id)"), ("file", "file-\(disk.id)"), ("read-only", readOnly)]))
        var top = "fmt-\(disk.id)"
        let group: String? = if disk.rateLimiter != nil {
            "tg-disk-\(disk.id)"
        } else {
            disk.rateLimitGroup.map { "tg-\($0)" }
        }
        if let limiter = disk.rateLimiter, let group { add("-object", throttleGroup(group, limiter)) }
        if let group {
            add("-blockdev", opts("driver=throttle", [
                ("node-name", "thr-\(disk.id)"), ("throttle-group", group), ("file", top), ("read-only", readOnly),
            ]))
            top = "thr-\(disk.id)"
        }
        add("-device", opts(virtio("virtio-blk"), [
            ("drive", top), ("id", disk.id), ("num-queues", "\(disk.numQueues)"), ("queue-size", "\(disk.queueSize)"),
            ("serial", disk.serial.map(qemuOptionValue)),
        ]))
    }

    private mutating func writeNIC(_ nic: NICSpec) {
        let pairs = nic.numQueues / 2
        var mac: String?
        var queueSizes: [(String, String?)] = []
        switch nic.kind {
        case .tap, .macvtap:
            let host = configuration.nics[nic.id]
            let fds = (host?.fds ?? []).map(String.init)
            mac = host?.mac.description
            add("-netdev", opts("tap", [
                ("id", "net-\(nic.id)"), (fds.count == 1 ? "fd" : "fds", fds.joined(separator: ":")), ("vhost", "off"),
            ]))
        case .vhostUser:
            var chardev = "socket,id=chr-\(nic.id),path=\(qemuOptionValue(nic.vhostSocket ?? ""))"
            if nic.vhostMode == .server { chardev += ",server=on,wait=off" }
            add("-chardev", chardev)
            add("-netdev", "vhost-user,id=net-\(nic.id),chardev=chr-\(nic.id),queues=\(pairs)")
            mac = nic.mac.flatMap(MACAddress.init)?.description
            queueSizes = [("rx_queue_size", "\(nic.queueSize)"), ("tx_queue_size", "\(nic.queueSize)")]
        }
        let offloadTSO = nic.offloadTSO ? nil : "off"
        let offloadUFO = nic.offloadUFO ? nil : "off"
        let offloadCsum = nic.offloadCsum ? nil : "off"
        var parts: [(String, String?)] = [("netdev", "net-\(nic.id)"), ("id", nic.id), ("mac", mac),
                                          ("host_mtu", nic.mtu.map(String.init))]
        // No option ROM (iPXE) on PCI NICs: the guest boots from its kernel, not the network.
        if machine == .q35 { parts.append(("romfile", "")) }
        if pairs > 1 {
            parts.append(("mq", "on"))
            if machine == .q35 { parts.append(("vectors", "\(2 * pairs + 2)")) }
        }
        parts += queueSizes
        parts += [("csum", offloadCsum), ("guest_csum", offloadCsum),
                  ("guest_tso4", offloadTSO), ("guest_tso6", offloadTSO), ("host_tso4", offloadTSO), ("host_tso6", offloadTSO),
                  ("guest_ufo", offloadUFO), ("host_ufo", offloadUFO)]
        add("-device", opts(virtio("virtio-net"), parts))
    }
}
