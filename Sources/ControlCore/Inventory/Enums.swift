public import GRDB

/// A node's status as the control daemon sees it.
public enum NodeStatus: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// Connected and heartbeating within the grace period.
    case up = "UP"
    /// Missed heartbeats for longer than the grace period, or disconnected.
    case down = "DOWN"
    /// Taken out of placement by an operator; its VMs keep running.
    case maintenance = "MAINTENANCE"
    /// Not heard from since this control daemon started.
    case unknown = "UNKNOWN"
}

/// What the operator wants a VM to be.
public enum DesiredVMState: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case running, paused, stopped
    /// Deleted by the operator; the row stays until its node confirms the VM is gone.
    case deleted
}

/// What the VM's node last reported.
public enum ObservedVMState: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// Not defined on any node yet.
    case pending
    case created, running, paused, stopped
    /// The VMM exited on its own or the VM could not be started.
    case failed
    /// Its node is down or has not reported since the control daemon started.
    case unknown
}

/// The virtual machine monitor a VM runs under.
public enum VMMBackend: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case cloudHypervisor = "cloud-hypervisor"
    case qemu
}

/// What an image file is for.
public enum ImageKind: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case kernel, initramfs, disk
}

/// How a network reaches a node's wire.
public enum NetworkKind: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// TAP devices enslaved to a Linux bridge (`parent` is the bridge).
    case bridge
    /// MACVTAP devices on a host link (`parent` is that link).
    case macvtap
}

/// What an operation does.
public enum OperationKind: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case createVM = "create_vm"
    case startVM = "start_vm"
    case stopVM = "stop_vm"
    case pauseVM = "pause_vm"
    case resumeVM = "resume_vm"
    case rebootVM = "reboot_vm"
    case deleteVM = "delete_vm"
    case addNIC = "add_nic"
    case addDisk = "add_disk"
    case addImage = "add_image"
}

/// Where an operation is in its life.
public enum OperationStatus: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// Accepted and committed, waiting for its node (or its turn).
    case pending
    /// Handed to a node or being worked on.
    case running
    case succeeded
    case failed

    /// Succeeded or failed: nothing more will happen to it.
    public var isFinal: Bool { self == .succeeded || self == .failed }
}

/// What kind of thing an event is about.
public enum EventSubject: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case node, vm, image, network
    case rateLimitGroup = "rate_limit_group"
    case operation
    case control
}
