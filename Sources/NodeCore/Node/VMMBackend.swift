public import LinuxSys
public import VMModel
import Synchronization

/// Backends are recorded in the node's durable per-VM state.
extension VMMKind: Codable {}

/// A TAP or MACVTAP NIC the host preparation made for one boot, with its open queue descriptors.
public struct HostNIC: Hashable, Sendable {
    /// The device as the configuration translations see it (id, host name, queue pairs, MAC).
    public let device: PreparedNIC
    public let kind: NICKind
    /// One open descriptor per queue pair (`/dev/net/tun` attached to the TAP, or the MACVTAP's
    /// private `/dev/tapN` node). Owned by the ``PreparedHost`` until it is released: a backend
    /// passes them on (inherited at spawn, or SCM_RIGHTS) and never closes them.
    public let queueDescriptors: [Int32]

    public init(device: PreparedNIC, kind: NICKind, queueDescriptors: [Int32]) {
        self.device = device
        self.kind = kind
        self.queueDescriptors = queueDescriptors
    }
}

/// What a backend gets to build the launch of one VMM process: the checked specification and the
/// host resources prepared for this boot.
public struct VMMLaunchContext: Sendable {
    public let vmID: String
    /// The specification, validated for this backend, its paths resolved by the ``PathPolicy``.
    public let spec: VMSpec
    /// The VM's runtime directory: logs, vhost-user sockets, and the per-boot channel directory
    /// ``HostPreparation/channelDirectory(_:)`` (root-only, made empty for each boot, removed at
    /// release) where a backend puts its control socket and event/console FIFOs.
    public let runtime: VMRuntimeDirectory
    /// The unprivileged identity the VMM runs as.
    public let user: UserIdentity
    /// The VM's cgroup, created with its limits before the spawn.
    public let cgroup: CgroupPlacement
    public let nics: [HostNIC]
    /// The hugetlbfs mount backing guest memory, when the specification asks for hugepages.
    public let hugetlbfsMount: String?
    /// The outer seccomp filter (the VMM keeps its own inner filters on).
    public let seccomp: SeccompPolicy?
    /// The complete environment of the VMM process (an allowlist; nothing is inherited).
    public let environment: [String: String]

    public init(vmID: String, spec: VMSpec, runtime: VMRuntimeDirectory, user: UserIdentity,
                cgroup: CgroupPlacement, nics: [HostNIC], hugetlbfsMount: String?,
                seccomp: SeccompPolicy?, environment: [String: String]) {
        self.vmID = vmID
        self.spec = spec
        self.runtime = runtime
        self.user = user
        self.cgroup = cgroup
        self.nics = nics
        self.hugetlbfsMount = hugetlbfsMount
        self.seccomp = seccomp
        self.environment = environment
    }
}

/// Named descriptors held by the node, each closed exactly once: when taken and dropped, by
/// ``closeAll()``, or when the bag goes away.
public final class DescriptorBag: Sendable {
    private let descriptors = Mutex<[String: Int32]>([:])

    public init() {}

    /// Keeps `descriptor` under `name` (a descriptor already there under that name is closed).
    public func put(_ name: String, _ descriptor: consuming FileDescriptor) {
        let raw = descriptor.take()
        let previous = descriptors.withLock { table in
            defer { table[name] = raw }
            return table[name]
        }
        if let previous { try? FileDescriptor(adopting: previous).close() }
    }

    /// The raw number under `name` while the bag owns it (for a spawn plan's fd map).
    public func raw(_ name: String) -> Int32? { descriptors.withLock { $0[name] } }

    /// Hands over ownership of the descriptor under `name`.
    public func take(_ name: String) -> FileDescriptor? {
        descriptors.withLock { $0.removeValue(forKey: name) }.map { FileDescriptor(adopting: $0) }
    }

    /// Closes every descriptor still held.
    public func closeAll() {
        let all = descriptors.withLock { table in
            defer { table.removeAll() }
            return Array(table.values)
        }
        for raw in all { try? FileDescriptor(adopting: raw).close() }
    }

    deinit { closeAll() }
}

/// One VMM process to start, as a backend built it.
public struct VMMLaunch: Sendable {
    /// Executable, argv, fd map, uid/gid, rlimits (MEMLOCK where needed), seccomp, cgroup, jail.
    public var plan: SpawnPlan
    /// Node-side copies of what the child inherits (the pre-bound listening control socket, the
    /// write ends of the event and console channels); the node closes them right after the spawn,
    /// whether it succeeded or not. `plan.fileDescriptors` refers to their raw numbers.
    public let childEnds: DescriptorBag
    /// Node-side ends the backend's control takes in ``VMMBackend/connect(_:launch:process:)``
    /// (e.g. the event channel's read end).
    public let nodeEnds: DescriptorBag
    /// Output channels the supervisor drains into rotated logs (console/serial).
    public var outputs: [VMOutput]

    public init(plan: SpawnPlan, childEnds: DescriptorBag, nodeEnds: DescriptorBag, outputs: [VMOutput]) {
        self.plan = plan
        self.childEnds = childEnds
        self.nodeEnds = nodeEnds
        self.outputs = outputs
    }
}

/// A device the VMM added (hot plug or cold add before boot).
public struct VMMDevice: Hashable, Sendable {
    public let id: String
    /// The PCI address when the VMM reports one.
    public let pciAddress: String?

    public init(id: String, pciAddress: String?) {
        self.id = id
        self.pciAddress = pciAddress
    }
}

/// What the VMM reports about its VM.
public struct VMMInfo: Hashable, Sendable {
    /// The VMM's own state name (e.g. cloud-hypervisor's `Running`, QEMU's `running`).
    public let vmmState: String
    /// Guest memory as the VMM reports it, when it does.
    public let memoryBytes: Int64?
    /// The raw answer (JSON), for `info -o json`.
    public let raw: [UInt8]

    public init(vmmState: String, memoryBytes: Int64?, raw: [UInt8]) {
        self.vmmState = vmmState
        self.memoryBytes = memoryBytes
        self.raw = raw
    }
}

/// Why a backend could not build a launch or connect to its VMM.
public struct VMMBackendError: Error, Hashable, Sendable, CustomStringConvertible {
    public let backend: VMMKind
    /// What was being done, e.g. `create the event FIFO`.
    public let operation: String
    public let reason: String

    public init(backend: VMMKind, operation: String, reason: String) {
        self.backend = backend
        self.operation = operation
        self.reason = reason
    }

    public var description: String { "\(backend): cannot \(operation): \(reason)" }
}

/// The control channel of one running VMM (cloud-hypervisor's REST API, QEMU's QMP). Calls may run
/// concurrently with each other; the VM actor serializes the state-changing ones.
///
/// Every failure is a ``VMStateMachine/CallError``: `rejected(status:)` when the VMM answered and
/// refused (it is alive), `noAnswer` when the deadline passed or the exchange broke (hung or broken
/// VMM), `vmmGone` when the VMM is going away. `chain` keeps the VMM's own error chain.
public protocol VMMControl: Sendable {
    /// The VMM's events in the state machine's vocabulary, in order. Finishes at the end of the
    /// VMM's event channel (the process closed it by exiting), so the owner can drain it before
    /// feeding the process exit. One consumer.
    var events: AsyncStream<VMStateMachine.Event> { get }

    /// Performs a state machine call. `.create` creates the VM from the launch context's
    /// specification and attaches its host NICs (before boot); `.boot`, `.pause`, `.resume`,
    /// `.reboot`, `.powerButton` do what they say.
    func perform(_ call: VMStateMachine.Call) async throws(VMStateMachine.CallError)

    /// The graceful step of the teardown ladder: asks the VMM to stop the VM and exit. Returns when
    /// the request was answered or failed; the process exit is what the ladder waits for.
    func shutdown() async

    /// Deletes the VM inside the VMM (the process keeps running where the VMM allows it).
    func delete() async throws(VMStateMachine.CallError)

    func info() async throws(VMStateMachine.CallError) -> VMMInfo

    /// Per device, per counter.
    func counters() async throws(VMStateMachine.CallError) -> [String: [String: Int64]]

    /// Changes the number of vCPUs and/or the guest memory size.
    func resize(vcpus: Int?, memoryBytes: Int64?) async throws(VMStateMachine.CallError)

    /// Hot-plugs a NIC backed by `host`'s queue descriptors.
    func addNIC(_ nic: NICSpec, host: HostNIC) async throws(VMStateMachine.CallError) -> VMMDevice

    /// Hot-plugs a disk.
    func addDisk(_ disk: DiskSpec) async throws(VMStateMachine.CallError) -> VMMDevice

    /// Asks for a device's removal; it goes when the guest acknowledges.
    func removeDevice(id: String) async throws(VMStateMachine.CallError)

    /// Stops reading events and releases the channel (the VMM is not signalled).
    func close()
}

/// A VMM implementation the node can run VMs with: validation, launch, control.
///
/// The node's order for one boot: ``validate(_:)`` (at create time) → host preparation →
/// ``launch(for:)`` → spawn through the jailed `Launcher` → `childEnds` closed → the supervisor
/// watches the process and drains `outputs` → ``connect(_:launch:process:)`` → `perform(.create)`,
/// `perform(.boot)`. After a node restart,
/// ``reconnect(_:process:)`` replaces the last three steps for a VMM that still runs.
public protocol VMMBackend: Sendable {
    var kind: VMMKind { get }
    /// The VMM executable (configuration: a real VMM or a test double).
    var binary: String { get }

    /// Problems that make `spec` unusable with this backend, each naming the field and the
    /// backend (in addition to `VMSpec.validate()`, which the node runs itself).
    func validate(_ spec: VMSpec) -> [SpecProblem]

    /// Builds the process launch: channels created and opened (control socket bound and listening,
    /// event and console channels), argv, fd map, rlimits, jail mounts. Nothing is spawned.
    func launch(for context: VMMLaunchContext) throws(VMMBackendError) -> VMMLaunch

    /// Connects the control channel of a freshly spawned VMM (no polling for a socket file: the
    /// socket was listening before the spawn).
    func connect(_ context: VMMLaunchContext, launch: VMMLaunch, process: ProcessIdentity) async throws(VMMBackendError) -> any VMMControl

    /// Reconnects to a VMM started by a previous node instance: the control channel, the event
    /// channel, and the outputs the supervisor should drain again.
    func reconnect(_ context: VMMLaunchContext, process: ProcessIdentity) async throws(VMMBackendError)
        -> (control: any VMMControl, outputs: [VMOutput])

    /// The node's log of the guest's serial console in a VM's runtime directory.
    func serialLog(_ runtime: VMRuntimeDirectory) -> String
}

extension VMMBackend {
    /// `<runtime>/serial.log`.
    public func serialLog(_ runtime: VMRuntimeDirectory) -> String { runtime.path + "/serial.log" }
}
