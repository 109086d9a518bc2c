public import LinuxSys
public import VMModel

/// The node's hugepage settings.
public struct HugepageSettings: Hashable, Sendable {
    /// Raise `nr_hugepages` when free pages are short (and give them back after the VM), instead
    /// of refusing the VM.
    public var autoReserve: Bool
    /// Where missing hugetlbfs mounts are made.
    public var provisioner: HugetlbfsProvisioner

    public init(autoReserve: Bool, provisioner: HugetlbfsProvisioner = HugetlbfsProvisioner()) {
        self.autoReserve = autoReserve
        self.provisioner = provisioner
    }
}

/// What host preparation holds for a VM's hugepages; undo with ``HugepageLedger/release(_:)``.
public struct PreparedHugepages: Hashable, Sendable {
    public var reservation: HugepageReservation
    /// The hugetlbfs for the VM's page size (kept after the VM: it is the node's).
    public var mount: HugetlbfsMount
    /// The mount was made for this VM (report it).
    public var mountedNow: Bool
}

extension HugepageLedger {
    /// Before launch: makes sure a hugetlbfs of the VM's page size is mounted, then reserves the
    /// pages its boot memory needs (on `numaNode` when given). Nil when the spec does not use
    /// hugepages. A shortage throws before anything is mounted or reserved, with the count missing.
    public func prepare(for spec: VMSpec, vm: String, numaNode: Int? = nil,
                        settings: HugepageSettings) throws(HugepageError) -> PreparedHugepages? {
        guard let need = HugepageNeed(memory: spec.memory, numaNode: numaNode) else { return nil }
        let available = try available(need)
        if !settings.autoReserve && available < need.pages { throw .shortage(need: need, available: available) }
        let provisioned: HugetlbfsProvisioner.Provisioned
        do {
            provisioned = try settings.provisioner.ensure(need.pageSize)
        } catch {
            throw .system(error)
        }
        let reservation = try reserve(need, for: vm, autoReserve: settings.autoReserve)
        return PreparedHugepages(reservation: reservation, mount: provisioned.mount, mountedNow: provisioned.mountedNow)
    }
}
