public import VMModel

/// The QEMU machine type a VM runs on.
public enum QEMUMachine: String, Hashable, Sendable, CaseIterable {
    /// `-M microvm`: virtio-mmio devices, no PCI, no firmware; boots a PVH kernel in tens of
    /// milliseconds. Nothing can be hot-plugged.
    case microvm
    /// `-M q35`: PCI Express with spare root ports for `device_add`, CPU and memory hotplug; boots
    /// through SeaBIOS, seconds slower.
    case q35
}

/// Where a serial port or console goes when the specification says `tty` (the VMM's standard
/// output): the node's console pipe, or QEMU's own stdout.
public enum QEMUConsoleSink: Hashable, Sendable {
    /// QEMU's standard output (`-chardev stdio`).
    case stdout
    /// A descriptor QEMU inherits at this number (the write end of the node's console pipe), opened
    /// as `/proc/self/fd/N` by a `file` chardev: QEMU has no chardev backend taking a raw fd for
    /// output, and `-add-fd` + `/dev/fdset/N` is refused for a file chardev (EINVAL from QEMU 7.2).
    /// Needs `/proc` in the VMM's mount namespace.
    case inheritedFD(Int32)
}

/// What the node provides for one QEMU launch besides the specification: the descriptors it passes
/// (numbers as seen by QEMU after spawn) and the backend's own choices.
public struct QEMULaunchConfiguration: Hashable, Sendable {
    /// The CPU model. `host` exposes the host CPU; `-arch-capabilities` hides the
    /// IA32_ARCH_CAPABILITIES MSR (0x10a), which QEMU otherwise copies from the host into the vCPU —
    /// and which kvm_pvm refuses to set, so a plain `-cpu host` aborts at start ("failed to set MSR
    /// 0x10a"). On hardware KVM the guest then reads its speculation-safety bits from CPUID only and
    /// may enable a few more mitigations; nothing else changes.
    public static let defaultCPUModel = "host,-arch-capabilities"

    /// A pre-bound, listening Unix stream socket QEMU serves QMP on (`-chardev socket,fd=N,server=on`):
    /// the node connects as soon as QEMU runs, without polling for a socket file.
    public var qmpListenerFD: Int32
    /// The `tty` destination of the serial port and the virtio console.
    public var console: QEMUConsoleSink
    /// The host side of every NIC of kind `tap` or `macvtap`, by NIC id.
    public var nics: [String: QEMUHostNIC]
    /// The machine; `nil` picks `q35` when the specification or ``pciHotplug`` needs hotplug, else
    /// `microvm`.
    public var machine: QEMUMachine?
    /// The VM must accept `device_add` (spare PCIe root ports): requires q35.
    public var pciHotplug: Bool
    /// Spare PCIe root ports on q35 for `device_add` (ids `hp0`, `hp1`…).
    public var hotplugPorts: Int
    /// Adds `isa-debug-exit` at port 0xf4 (size 4), so a guest can end QEMU with an exit status
    /// `(value << 1) | 1` — for tests and benchmarks.
    public var debugExit: Bool
    public var cpuModel: String
    /// Disks QEMU gets as inherited descriptors rather than by path, by disk id: the fd set
    /// (`-add-fd …,set=N`) whose `/dev/fdset/N` the disk's `file` blockdev opens. The node opens
    /// the image (as root, after its path checks); the unprivileged, jailed VMM never needs to.
    public var diskFDSets: [String: Int] = [:]

    public init(qmpListenerFD: Int32, console: QEMUConsoleSink = .stdout, nics: [String: QEMUHostNIC] = [:],
                machine: QEMUMachine? = nil, pciHotplug: Bool = false, hotplugPorts: Int = 4,
                debugExit: Bool = false, cpuModel: String = QEMULaunchConfiguration.defaultCPUModel) {
        self.qmpListenerFD = qmpListenerFD
        self.console = console
        self.nics = nics
        self.machine = machine
        self.pciHotplug = pciHotplug
        self.hotplugPorts = hotplugPorts
        self.debugExit = debugExit
        self.cpuModel = cpuModel
    }
}

/// A TAP or MACVTAP device the node opened for one NIC: the descriptors QEMU inherits and the
/// guest's MAC address.
public struct QEMUHostNIC: Hashable, Sendable {
    /// One descriptor per queue pair (`num_queues / 2`), as numbered in QEMU's process.
    public var fds: [Int32]
    /// The guest's MAC: the specification's, or the one the node chose.
    public var mac: MACAddress

    public init(fds: [Int32], mac: MACAddress) {
        self.fds = fds
        self.mac = mac
    }
}
