/// A point in one VM's boot that the node reaches, in order.
public enum BootMilestone: String, Sendable, Hashable, CaseIterable, Codable {
    /// The specification passed every check (``NodeRuntime/create(_:)``).
    case specValidated = "spec_validated"
    /// NICs, hugepages and the cgroup are ready.
    case hostPrepared = "host_prepared"
    /// The backend built the launch: control socket, event and console channels, argv.
    case launchPlanned = "launch_planned"
    /// The jailed VMM process exists.
    case vmmSpawned = "vmm_spawned"
    /// The VM's durable record is written and the supervisor watches the process.
    case supervised
    /// The node holds the VMM's control channel (cloud-hypervisor: event channel watched, API socket
    /// listening since before the spawn; QEMU: QMP greeting and capabilities negotiated).
    case apiReady = "api_ready"
    /// The VM exists inside the VMM (`vm.create` and NIC attachments answered).
    case created
    /// The boot call was answered.
    case bootReturned = "boot_returned"
    /// The VMM reported the guest booted (cloud-hypervisor's `vm/booted` event).
    case guestBooted = "guest_booted"
    /// The VMM process ended and the node handled its exit.
    case vmmExited = "vmm_exited"
}

/// Receives boot milestones and the guest's serial bytes as the node sees them. Optional in
/// ``NodeConfiguration``: when absent, the node pays one nil check per milestone.
///
/// Callbacks run on whatever thread reaches the milestone (a VM actor, the reactor thread for
/// serial bytes): they must be quick and must not block.
public struct BootObserver: Sendable {
    /// Called when `vmID` reaches a milestone.
    public let milestone: @Sendable (_ vmID: String, _ milestone: BootMilestone) -> Void
    /// Called with each chunk of the guest's serial output, as read from the VMM.
    public let serial: (@Sendable (_ vmID: String, _ bytes: UnsafeRawBufferPointer) -> Void)?

    public init(milestone: @escaping @Sendable (_ vmID: String, _ milestone: BootMilestone) -> Void,
                serial: (@Sendable (_ vmID: String, _ bytes: UnsafeRawBufferPointer) -> Void)? = nil) {
        self.milestone = milestone
        self.serial = serial
    }
}
