public import LinuxSys

/// How this node runs VMs: where their files go, who their VMMs run as, where their cgroups and
/// NICs live, and how long VMM calls and the teardown ladder may take.
public struct NodeConfiguration: Sendable {
    /// Per-VM runtime directories (`<root>/<vm-id>`): control socket, event and console channels, logs.
    public var runtimeRoot: String
    /// Durable node state: one record per VM (`vms/`) and the supervisor's process records (`supervisor/`).
    public var stateDirectory: String
    /// Where kernels, initramfs, firmware and disks may live.
    public var pathPolicy: PathPolicy
    /// The unprivileged identity every VMM process runs as (default `nobody`, 65534).
    public var vmmUser: UserIdentity
    /// The cgroup parent of the per-VM groups (`<controller mount>/<parent>/<vm-id>`).
    public var cgroupParent: String
    /// The host's cgroup hierarchies under ``cgroupParent``; nil: detected by
    /// ``NodeRuntime/open(configuration:backend:)`` (once, not per VM).
    public var cgroupManager: CgroupManager?
    /// The network namespace holding the VMs' TAP and MACVTAP links.
    public var networkNamespace: NetworkNamespace
    /// Whether missing hugepages are reserved or the VM refused, and where hugetlbfs is mounted.
    public var hugepages: HugepageSettings
    /// The node-wide hugepage accounting.
    public var hugepageLedger: HugepageLedger
    /// Memory the VMM process may use beyond guest RAM (its own heap, device buffers), added to the
    /// cgroup's memory limit.
    public var vmmMemoryOverhead: UInt64
    /// The cgroup's pids limit (VMM threads: one per vCPU, per queue, API, event loop…).
    public var pidsMax: UInt64
    /// The outer seccomp filter of VMM processes.
    public var seccomp: SeccompPolicy?
    /// The VMM's whole environment (an allowlist: nothing of the node's is inherited; never
    /// `RUST_BACKTRACE`, which costs a Rust VMM ~35 MB per error backtrace).
    public var vmmEnvironment: [String: String]
    /// The deadline of one VMM control call.
    public var callTimeout: Duration
    /// The teardown ladder's deadlines: graceful (API) step, SIGTERM, SIGKILL.
    public var gracefulTimeout: Duration
    public var terminateTimeout: Duration
    public var killTimeout: Duration
    /// How long the event channel may take to reach its end after the VMM process exited.
    public var eventDrainTimeout: Duration
    /// Sees each boot's milestones and serial output (benchmarks); nil in production.
    public var bootObserver: BootObserver? = nil

    public init(runtimeRoot: String, stateDirectory: String, pathPolicy: PathPolicy,
                vmmUser: UserIdentity = .nobody, cgroupParent: String = "qarax",
                networkNamespace: NetworkNamespace = .current,
                hugepages: HugepageSettings = HugepageSettings(autoReserve: false),
                hugepageLedger: HugepageLedger = .shared, vmmMemoryOverhead: UInt64 = 128 << 20,
                pidsMax: UInt64 = 1024, seccomp: SeccompPolicy? = .vmmDefault,
                vmmEnvironment: [String: String] = [:], callTimeout: Duration = .seconds(10),
                gracefulTimeout: Duration = .seconds(5), terminateTimeout: Duration = .seconds(5),
                killTimeout: Duration = .seconds(5), eventDrainTimeout: Duration = .seconds(2)) {
        self.runtimeRoot = runtimeRoot
        self.stateDirectory = stateDirectory
        self.pathPolicy = pathPolicy
        self.vmmUser = vmmUser
        self.cgroupParent = cgroupParent
        self.cgroupManager = nil
        self.networkNamespace = networkNamespace
        self.hugepages = hugepages
        self.hugepageLedger = hugepageLedger
        self.vmmMemoryOverhead = vmmMemoryOverhead
        self.pidsMax = pidsMax
        self.seccomp = seccomp
        self.vmmEnvironment = vmmEnvironment
        self.callTimeout = callTimeout
        self.gracefulTimeout = gracefulTimeout
        self.terminateTimeout = terminateTimeout
        self.killTimeout = killTimeout
        self.eventDrainTimeout = eventDrainTimeout
    }

    /// The cgroup manager: the configured one, or one detected now.
    public func cgroups() throws(CgroupError) -> CgroupManager {
        if let cgroupManager { return cgroupManager }
        return try CgroupManager.detect(parent: cgroupParent)
    }

    /// `<stateDirectory>/vms`: the node's per-VM records.
    public var vmRecordDirectory: String { stateDirectory + "/vms" }
    /// `<stateDirectory>/supervisor`: the supervisor's process records.
    public var supervisorDirectory: String { stateDirectory + "/supervisor" }
}
