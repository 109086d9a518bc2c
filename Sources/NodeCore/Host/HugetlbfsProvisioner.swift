public import LinuxSys

#if canImport(Glibc)
import Glibc
#endif

/// Makes sure a hugetlbfs is mounted for each page size VMs use.
///
/// An existing mount of the right `pagesize=` (e.g. systemd's `/dev/hugepages`) is used as is;
/// otherwise one is mounted at `<baseDirectory>/hugepages-2M` (or `-1G`) and reported.
public struct HugetlbfsProvisioner: Hashable, Sendable {
    /// Where missing mounts go, e.g. `/run/qarax`.
    public var baseDirectory: String
    /// The mode of the root of a mount this provisioner creates (VMM processes run under their
    /// own uids and create their files there).
    public var mode: UInt32
    public var mountinfoPath: String

    public init(baseDirectory: String = "/run/qarax", mode: UInt32 = 0o1777,
                mountinfoPath: String = "/proc/self/mountinfo") {
        self.baseDirectory = baseDirectory
        self.mode = mode
        self.mountinfoPath = mountinfoPath
    }

    /// The mount found or made.
    public struct Provisioned: Hashable, Sendable {
        public var mount: HugetlbfsMount
        /// This call mounted it (the caller may unmount it on shutdown).
        public var mountedNow: Bool
    }

    /// Where a missing mount for `pageSize` is made.
    public func mountPoint(for pageSize: HugepageSize) -> String {
        "\(baseDirectory)/hugepages-\(pageSize.mountOptionValue)"
    }

    /// An existing hugetlbfs mount of `pageSize`, if any.
    public func existing(_ pageSize: HugepageSize) throws(SystemError) -> HugetlbfsMount? {
        try HugetlbfsMount.all(mountinfo: mountinfoPath).first { $0.pageSize == pageSize }
    }

    /// Finds a hugetlbfs mount for `pageSize`, or mounts one.
    public func ensure(_ pageSize: HugepageSize) throws(SystemError) -> Provisioned {
        if let mount = try existing(pageSize) { return Provisioned(mount: mount, mountedNow: false) }
        let directory = mountPoint(for: pageSize)
        try HostFiles.makeDirectories(directory, mode: 0o755)
        let mount = try HugetlbfsMount.mount(at: directory, pageSize: pageSize, mode: mode)
        return Provisioned(mount: mount, mountedNow: true)
    }
}
