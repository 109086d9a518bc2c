#if canImport(Glibc)
import Glibc
#endif
import LinuxSys

/// Runs every host check and gathers them into a `DoctorReport`.
public enum HostDoctor {
    public struct Options: Sendable {
        /// Binary named by `--cloud-hypervisor-binary`; nil searches PATH.
        public var cloudHypervisorBinary: String?
        /// Binary named by `--qemu-binary`; nil searches PATH.
        public var qemuBinary: String?
        /// Where to look for VMMs not named by a flag.
        public var searchPath: String
        /// How long a VMM may take to answer `--version`.
        public var versionTimeout: Duration

        public init(cloudHypervisorBinary: String? = nil, qemuBinary: String? = nil,
                    searchPath: String = Options.defaultSearchPath, versionTimeout: Duration = .seconds(5)) {
            self.cloudHypervisorBinary = cloudHypervisorBinary
            self.qemuBinary = qemuBinary
            self.searchPath = searchPath
            self.versionTimeout = versionTimeout
        }

        /// `$PATH`, or the usual system directories when unset.
        public static var defaultSearchPath: String {
            if let path = getenv("PATH") { return String(cString: path) }
            return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        }
    }

    /// Runs the checks in report order. Blocks the calling thread (device opens, a VMM's
    /// `--version` up to `versionTimeout` each): call it from a thread, not the cooperative pool.
    public static func run(_ options: Options = Options()) -> DoctorReport {
        let status = (try? readProcFile("/proc/self/status")) ?? ""
        let ch = VMMProbe.check(.cloudHypervisor, explicitPath: options.cloudHypervisorBinary,
                                searchPath: options.searchPath, timeout: options.versionTimeout)
        let qemu = VMMProbe.check(.qemu, explicitPath: options.qemuBinary,
                                  searchPath: options.searchPath, timeout: options.versionTimeout)
        var explicit = Set<DoctorCheck>()
        if options.cloudHypervisorBinary != nil { explicit.insert(.cloudHypervisor) }
        if options.qemuBinary != nil { explicit.insert(.qemu) }
        return DoctorReport(results: [
            HostChecks.kernel(),
            HostChecks.kvm(),
            HostChecks.tun(),
            HostChecks.vhostNet(),
            HostChecks.vhostVsock(),
            HostChecks.cgroups(topology: try? CgroupTopology.detect()),
            HostChecks.seccomp(status: status),
            HostChecks.hugepages(),
            ch,
            qemu,
            VMMProbe.aggregate([ch, qemu], explicit: explicit),
            HostChecks.capabilities(status: status),
        ])
    }
}
