#if canImport(Glibc)
import Glibc
#endif
import CShims
public import LinuxSys

extension HostChecks {
    // MARK: cgroups

    /// Controllers a VM's cgroup must have, wherever they live (v1 or v2).
    public static let requiredControllers = ["cpu", "memory", "pids"]

    /// The cgroup layout and where each controller lives; on a hybrid host, v1 cpu/memory/pids are
    /// as good as v2 ones (qarax uses whichever hierarchy holds a controller).
    public static func cgroups(topology: CgroupTopology?) -> CheckResult {
        guard let topology, topology.layout != .none else {
            return CheckResult(.cgroups, passed: false, summary: "no cgroup filesystem mounted",
                               fix: "mount cgroup2: mount -t cgroup2 none /sys/fs/cgroup (or boot with systemd, which mounts it)",
                               details: ["layout": .string(CgroupLayout.none.rawValue)])
        }
        var details: [String: DoctorValue] = ["layout": .string(topology.layout.rawValue)]
        var v1: [String: DoctorValue] = [:]
        for hierarchy in topology.v1 where !hierarchy.controllers.isEmpty {
            for controller in hierarchy.controllers { v1[controller] = .string(hierarchy.mountPoint) }
        }
        details["v1_controllers"] = .object(v1)
        if let v2 = topology.v2 {
            details["v2_mount"] = .string(v2.mountPoint)
            details["v2_controllers"] = .array(topology.v2Controllers.map { .string($0) })
        }

        var parts: [String] = []
        if !topology.v1Controllers.isEmpty { parts.append("v1 " + topology.v1Controllers.joined(separator: ",")) }
        if let v2 = topology.v2 {
            let controllers = topology.v2Controllers.isEmpty ? "no controllers" : topology.v2Controllers.joined(separator: ",")
            parts.append("v2 at \(v2.mountPoint): \(controllers)")
        }
        var summary = "\(topology.layout.rawValue): " + parts.joined(separator: "; ")

        let missing = requiredControllers.filter { topology.location(of: $0) == nil }
        let readOnly = requiredControllers.compactMap { controller -> String? in
            let mount: String? = switch topology.location(of: controller) {
            case let .v1(mountPoint, _)?: mountPoint
            case let .v2(mountPoint)?: mountPoint
            case nil: nil
            }
            guard let mount, access(mount, W_OK) != 0 else { return nil }
            return "\(controller) (\(mount))"
        }
        details["missing"] = .array(missing.map { .string($0) })
        if !missing.isEmpty {
            summary += "; missing \(missing.joined(separator: ", "))"
            return CheckResult(.cgroups, passed: false, summary: summary,
                               fix: "enable the \(missing.joined(separator: ", ")) controller(s): on cgroup v2 boot with systemd.unified_cgroup_hierarchy=1 (controllers appear in /sys/fs/cgroup/cgroup.controllers); on v1 mount -t cgroup -o \(missing.joined(separator: ",")) cgroup /sys/fs/cgroup/\(missing[0])",
                               details: details)
        }
        if !readOnly.isEmpty {
            summary += "; not writable: \(readOnly.joined(separator: ", "))"
            return CheckResult(.cgroups, passed: false, summary: summary,
                               fix: "run qarax-node as root with the cgroup filesystems mounted read-write (or delegate a subtree to its user)",
                               details: details)
        }
        let used = requiredControllers.map { controller -> String in
            if case .v1? = topology.location(of: controller) { return "\(controller) v1" }
            return "\(controller) v2"
        }
        summary += " (uses " + used.joined(separator: ", ") + ")"
        return CheckResult(.cgroups, passed: true, summary: summary, details: details)
    }

    // MARK: seccomp

    /// The `Seccomp:` field of `/proc/self/status` (nil when the kernel lacks CONFIG_SECCOMP).
    public static func parseStatusField(_ field: String, in status: String) -> String? {
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            return line.dropFirst(field.count + 1).split(whereSeparator: \.isWhitespace).joined(separator: " ")
        }
        return nil
    }

    /// Seccomp filter support: the `Seccomp:` status field exists, and `SECCOMP_GET_ACTION_AVAIL`
    /// confirms the actions qarax's policies use (kill-process and errno).
    /// `prctlMode` is `prctl(PR_GET_SECCOMP)`'s result (or -errno), read when nil.
    public static func seccomp(status: String, prctlMode: Int32? = nil) -> CheckResult {
        let prctlMode = prctlMode ?? qx_seccomp_mode()
        guard let mode = parseStatusField("Seccomp", in: status) ?? (prctlMode >= 0 ? "\(prctlMode)" : nil) else {
            return CheckResult(.seccomp, passed: false, summary: "the kernel has no seccomp (no Seccomp: in /proc/self/status)",
                               fix: "run a kernel built with CONFIG_SECCOMP=y and CONFIG_SECCOMP_FILTER=y")
        }
        let actions: [(String, UInt32, Bool)] = [
            ("kill_process", qx_seccomp_ret_kill_process(), true),
            ("errno", qx_seccomp_ret_errno(), true),
            ("trap", qx_seccomp_ret_trap(), false),
            ("log", qx_seccomp_ret_log(), false),
            ("user_notif", qx_seccomp_ret_user_notif(), false),
        ]
        var available: [String] = []
        var missingRequired: [String] = []
        var probeError: Int32 = 0
        for (name, action, required) in actions {
            let r = qx_seccomp_action_available(action)
            if r == 0 { available.append(name) }
            else {
                if required { missingRequired.append(name) }
                if r != -EOPNOTSUPP { probeError = -r }
            }
        }
        let details: [String: DoctorValue] = ["mode": .string(mode), "actions": .array(available.map { .string($0) })]
        if !missingRequired.isEmpty {
            let why = probeError != 0 ? " (\(SystemError.name(of: probeError)))" : ""
            return CheckResult(.seccomp, passed: false,
                               summary: "seccomp filter actions unavailable: \(missingRequired.joined(separator: ", "))\(why)",
                               fix: "run a kernel built with CONFIG_SECCOMP_FILTER=y (Linux 4.14 or newer)", details: details)
        }
        let modeText = switch mode { case "0": "not confined"; case "1": "strict"; default: "filtered" }
        return CheckResult(.seccomp, passed: true,
                           summary: "filters supported (actions: \(available.joined(separator: ", "))); this process: \(modeText)",
                           details: details)
    }

    // MARK: hugepages

    /// Hugepages per size (total/free) and per NUMA node.
    public static func hugepages(root: String = "/sys/kernel/mm/hugepages",
                                 nodeRoot: String = "/sys/devices/system/node") -> CheckResult {
        let sizes = hugepageSizes(in: root)
        let nodes = (try? readProcFile(nodeRoot + "/online")).flatMap { CpuList.parse($0) }.map { $0.sorted() } ?? []
        var entries: [DoctorValue] = []
        var parts: [String] = []
        var anyReserved = false
        for size in sizes {
            let dir = "\(root)/hugepages-\(size)kB"
            let total = readCount(dir + "/nr_hugepages")
            let free = readCount(dir + "/free_hugepages")
            anyReserved = anyReserved || total > 0
            var perNode: [String: DoctorValue] = [:]
            for node in nodes {
                let nodeDir = "\(nodeRoot)/node\(node)/hugepages/hugepages-\(size)kB"
                perNode["\(node)"] = .object(["total": .int(readCount(nodeDir + "/nr_hugepages")),
                                              "free": .int(readCount(nodeDir + "/free_hugepages"))])
            }
            entries.append(.object(["size_kb": .int(Int64(size)), "total": .int(total), "free": .int(free),
                                    "nodes": .object(perNode)]))
            parts.append("\(formatSize(kib: size)) \(free)/\(total) free")
        }
        let details: [String: DoctorValue] = ["sizes": .array(entries), "numa_nodes": .array(nodes.map { .int(Int64($0)) })]
        let nodesText = "NUMA nodes: " + (nodes.isEmpty ? "unknown" : nodes.map(String.init).joined(separator: ","))
        if sizes.isEmpty {
            return CheckResult(.hugepages, passed: false, summary: "no hugepage support (\(root) missing)",
                               fix: "run a kernel built with CONFIG_HUGETLBFS=y; needed only for hugepage-backed VM memory",
                               details: details)
        }
        let summary = parts.joined(separator: ", ") + "; " + nodesText
        if !anyReserved {
            return CheckResult(.hugepages, passed: false, summary: summary + " (none reserved)",
                               fix: "reserve pages if VMs use hugepages: sysctl vm.nr_hugepages=N (2 MiB pages) or echo N > \(root)/hugepages-1048576kB/nr_hugepages (1 GiB)",
                               details: details)
        }
        return CheckResult(.hugepages, passed: true, summary: summary, details: details)
    }

    static func hugepageSizes(in root: String) -> [Int] {
        guard let dir = opendir(root) else { return [] }
        defer { closedir(dir) }
        var sizes: [Int] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: &entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("hugepages-"), name.hasSuffix("kB"), let kib = Int(name.dropFirst(10).dropLast(2)) {
                sizes.append(kib)
            }
        }
        return sizes.sorted()
    }

    private static func readCount(_ path: String) -> Int64 {
        (try? readProcFile(path)).flatMap { Int64($0.split(whereSeparator: \.isWhitespace).first ?? "") } ?? 0
    }

    static func formatSize(kib: Int) -> String {
        if kib >= 1 << 20, kib % (1 << 20) == 0 { return "\(kib >> 20) GiB" }
        if kib >= 1 << 10, kib % (1 << 10) == 0 { return "\(kib >> 10) MiB" }
        return "\(kib) KiB"
    }

    // MARK: Capabilities

    /// Capability names by number (`<linux/capability.h>`, up to CAP_CHECKPOINT_RESTORE).
    public static let capabilityNames = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    /// What the node daemon needs each capability for.
    public static let requiredCapabilities: [(name: String, why: String)] = [
        ("CAP_NET_ADMIN", "create and configure TAP/MACVTAP links"),
        ("CAP_SYS_ADMIN", "namespaces, mounts and pivot_root for the jail"),
        ("CAP_SETUID", "run each VMM under its own uid"),
        ("CAP_SETGID", "run each VMM under its own gid"),
        ("CAP_SETPCAP", "drop the VMM's bounding capability set"),
        ("CAP_SYS_CHROOT", "enter the jail root"),
        ("CAP_MKNOD", "create /dev nodes inside the jail"),
        ("CAP_CHOWN", "hand TAP devices and jail files to the VMM's uid"),
        ("CAP_DAC_OVERRIDE", "write cgroup and state files owned by others"),
        ("CAP_KILL", "signal VMMs running under other uids"),
    ]

    /// Capabilities that only some VMs need; missing ones are reported but do not fail the check.
    public static let optionalCapabilities: [(name: String, why: String)] = [
        ("CAP_SYS_RESOURCE", "raise a VMM's RLIMIT_MEMLOCK/NOFILE above the hard limit, for VFIO or locked guest memory"),
    ]

    /// The names of the bits set in a hex mask such as `CapEff:\t000001fffeffffff`.
    public static func decodeCapabilities(hex: String) -> [String]? {
        guard let mask = UInt64(hex, radix: 16) else { return nil }
        return (0..<64).filter { mask & (1 << UInt64($0)) != 0 }.map { $0 < capabilityNames.count ? capabilityNames[$0] : "CAP_\($0)" }
    }

    /// The effective capabilities (`CapEff` of `/proc/self/status`) against what qarax-node needs.
    public static func capabilities(status: String) -> CheckResult {
        guard let hex = parseStatusField("CapEff", in: status), let held = decodeCapabilities(hex: hex) else {
            return CheckResult(.capabilities, passed: false, summary: "cannot read CapEff from /proc/self/status",
                               fix: "run on Linux with /proc mounted")
        }
        let missing = requiredCapabilities.filter { !held.contains($0.name) }
        let optionalMissing = optionalCapabilities.filter { !held.contains($0.name) }
        let details: [String: DoctorValue] = [
            "effective": .string(hex),
            "held": .array(held.map { .string($0) }),
            "missing": .array(missing.map { .string($0.name) }),
            "optional_missing": .array(optionalMissing.map { .string($0.name) }),
        ]
        if missing.isEmpty {
            let note = optionalMissing.isEmpty ? ""
                : "; lacks " + optionalMissing.map { "\($0.name) (only to \($0.why))" }.joined(separator: ", ")
            return CheckResult(.capabilities, passed: true,
                               summary: "all \(requiredCapabilities.count) needed held\(note)", details: details)
        }
        let list = missing.map { "\($0.name) (\($0.why))" }.joined(separator: ", ")
        let setcap = missing.map { $0.name.lowercased() }.joined(separator: ",")
        return CheckResult(.capabilities, passed: false, summary: "missing \(list)",
                           fix: "run qarax-node as root, or grant them: setcap \(setcap)+ep $(command -v qarax-node) (systemd: AmbientCapabilities=)",
                           details: details)
    }
}
