/// Everything the launcher needs to start one confined process, as plain data.
///
/// Pure: building and validating a plan touches no kernel state. `Launcher` turns it into a
/// clone3 → execve child. Defaults are the confined ones: uid/gid 65534, no capabilities in any
/// set, no_new_privs, the built-in VMM seccomp filter, core dumps off, a new session, an empty
/// environment and only the mapped descriptors (stdio on /dev/null unless mapped).
public struct SpawnPlan: Hashable, Sendable {
    /// Absolute path of the program, as the child sees it (inside the jail when there is one).
    public var executable: String
    /// The complete argv, `argv[0]` included.
    public var arguments: [String]
    /// The exact environment; nothing of the launcher's is inherited.
    public var environment: [String: String]
    /// Child descriptor number → launcher descriptor placed there. The launcher's descriptors are
    /// only borrowed: they must stay open until `launch` returns, and the caller closes them after.
    /// Every other descriptor is closed in the child.
    public var fileDescriptors: [Int32: Int32]
    /// Puts `/dev/null` on whichever of 0, 1, 2 `fileDescriptors` leaves unmapped, so the first
    /// file the program opens never becomes its stderr.
    public var standardStreamsToDevNull: Bool
    /// The child's working directory (inside the jail when there is one); nil keeps `/` in a jail,
    /// the launcher's directory otherwise.
    public var workingDirectory: String?
    /// The identity the program runs as; nil keeps the launcher's (root).
    public var user: UserIdentity?
    /// Limits set before the identity changes (raising a hard limit needs privilege).
    public var resourceLimits: [ResourceLimit.Resource: ResourceLimit]
    /// `PR_SET_NO_NEW_PRIVS`: setuid and file-capability binaries gain nothing.
    public var noNewPrivileges: Bool
    /// The capability sets the program starts with.
    public var capabilities: CapabilityPlan
    /// The filter loaded last before `execve`; nil loads none.
    public var seccomp: SeccompPolicy?
    /// Where the child is placed before it runs anything.
    public var cgroup: CgroupPlacement
    /// A new mount namespace whose root is a directory of bind mounts; nil keeps the host's tree.
    public var jail: JailPlan?
    /// A new PID namespace: the program is its pid 1 (and then ignores signals it has no handler
    /// for, SIGKILL from outside excepted).
    public var newPIDNamespace: Bool
    /// `setsid()`: no controlling terminal, out of the launcher's process group.
    public var newSession: Bool

    public init(
        executable: String,
        arguments: [String]? = nil,
        environment: [String: String] = [:],
        fileDescriptors: [Int32: Int32] = [:],
        standardStreamsToDevNull: Bool = true,
        workingDirectory: String? = nil,
        user: UserIdentity? = .nobody,
        resourceLimits: [ResourceLimit.Resource: ResourceLimit] = SpawnPlan.defaultResourceLimits,
        noNewPrivileges: Bool = true,
        capabilities: CapabilityPlan = .none,
        seccomp: SeccompPolicy? = .vmmDefault,
        cgroup: CgroupPlacement = .inherit,
        jail: JailPlan? = nil,
        newPIDNamespace: Bool = false,
        newSession: Bool = true
    ) {
        self.executable = executable
        self.arguments = arguments ?? [executable]
        self.environment = environment
        self.fileDescriptors = fileDescriptors
        self.standardStreamsToDevNull = standardStreamsToDevNull
        self.workingDirectory = workingDirectory
        self.user = user
        self.resourceLimits = resourceLimits
        self.noNewPrivileges = noNewPrivileges
        self.capabilities = capabilities
        self.seccomp = seccomp
        self.cgroup = cgroup
        self.jail = jail
        self.newPIDNamespace = newPIDNamespace
        self.newSession = newSession
    }

    /// No core dumps (guest memory must never land on disk).
    public static let defaultResourceLimits: [ResourceLimit.Resource: ResourceLimit] = [.core: ResourceLimit(0)]

    /// Highest child descriptor number a plan may use.
    public static let maximumChildDescriptor: Int32 = 255

    /// `argv`/`envp` strings, environment sorted by name so the child's environment is reproducible.
    var environmentStrings: [String] {
        environment.keys.sorted().map { "\($0)=\(environment[$0] ?? "")" }
    }

    /// Every problem with the plan, each naming its field; empty when the plan can be launched.
    public func issues() -> [FieldIssue] { issues(checkingSeccompRules: true) }

    /// `checkingSeccompRules: false` skips the policy's own rules, for a launcher that already
    /// holds the policy compiled (and therefore checked).
    func issues(checkingSeccompRules: Bool) -> [FieldIssue] {
        var issues: [FieldIssue] = []
        func issue(_ field: String, _ value: String, _ reason: String) {
            issues.append(FieldIssue(field: "spawn.\(field)", value: value, reason: reason))
        }
        func checkPath(_ field: String, _ path: String) {
            if path.isEmpty {
                issue(field, "\"\"", "is empty")
            } else if path.utf8.contains(0) {
                issue(field, quoted(path), "contains a NUL byte")
            } else if !path.hasPrefix("/") {
                issue(field, quoted(path), "is not an absolute path")
            } else if path.split(separator: "/").contains("..") {
                issue(field, quoted(path), "contains a '..' component")
            }
        }

        checkPath("executable", executable)
        if arguments.isEmpty { issue("arguments", "[]", "is empty: argv[0] is required") }
        for (i, argument) in arguments.enumerated() where argument.utf8.contains(0) {
            issue("arguments[\(i)]", quoted(argument), "contains a NUL byte")
        }
        for name in environment.keys.sorted() {
            let value = environment[name] ?? ""
            if name.isEmpty || name.contains("=") || name.utf8.contains(0) {
                issue("environment", quoted(name), "is not a variable name (empty, or holds '=' or NUL)")
            }
            if value.utf8.contains(0) { issue("environment[\(name)]", quoted(value), "contains a NUL byte") }
        }
        for child in fileDescriptors.keys.sorted() {
            let parent = fileDescriptors[child] ?? -1
            if child < 0 || child > Self.maximumChildDescriptor {
                issue("fileDescriptors[\(child)]", "\(child)", "is not a child descriptor number (0…\(Self.maximumChildDescriptor))")
            }
            if parent < 0 { issue("fileDescriptors[\(child)]", "\(parent)", "is not an open descriptor of the launcher") }
        }
        if let workingDirectory { checkPath("workingDirectory", workingDirectory) }
        if let user {
            if user.uid == UInt32.max { issue("user.uid", "\(user.uid)", "is (uid_t)-1, which setresuid reads as 'unchanged'") }
            if user.gid == UInt32.max { issue("user.gid", "\(user.gid)", "is (gid_t)-1, which setresgid reads as 'unchanged'") }
            if user.supplementaryGroups.count > 65536 {
                issue("user.supplementaryGroups", "\(user.supplementaryGroups.count) groups", "exceeds NGROUPS_MAX (65536)")
            }
            for (i, group) in user.supplementaryGroups.enumerated() where group == UInt32.max {
                issue("user.supplementaryGroups[\(i)]", "\(group)", "is (gid_t)-1")
            }
        }
        for resource in ResourceLimit.Resource.allCases {
            guard let limit = resourceLimits[resource] else { continue }
            if limit.soft > limit.hard {
                issue("resourceLimits[\(resource)]", "soft \(limit.soft) > hard \(limit.hard)", "has a soft limit above its hard limit")
            }
        }
        let caps = capabilities
        if !caps.effective.isSubset(of: caps.permitted) {
            issue("capabilities.effective", "\(caps.effective)", "is not a subset of permitted \(caps.permitted)")
        }
        if !caps.ambient.isSubset(of: caps.permitted.intersection(caps.inheritable)) {
            issue("capabilities.ambient", "\(caps.ambient)", "is not a subset of permitted ∩ inheritable; the kernel refuses such ambient capabilities")
        }
        if !caps.inheritable.isSubset(of: caps.bounding) {
            issue("capabilities.inheritable", "\(caps.inheritable)", "is not a subset of bounding \(caps.bounding)")
        }
        if !caps.permitted.isSubset(of: caps.bounding) {
            issue("capabilities.permitted", "\(caps.permitted)", "is not a subset of bounding \(caps.bounding)")
        }
        if let seccomp {
            if !noNewPrivileges && !caps.effective.contains(.sysAdmin) {
                issue("seccomp", "a policy", "needs noNewPrivileges (or CAP_SYS_ADMIN kept): the kernel refuses the filter otherwise")
            }
            if checkingSeccompRules { issues += Self.launcherRequirementIssues(seccomp) }
            do {
                if checkingSeccompRules { try seccomp.validate() }
            } catch {
                if case .invalid(let seccompIssues) = error {
                    issues += seccompIssues.map { FieldIssue(field: "spawn.seccomp.\($0.field)", value: $0.value, reason: $0.reason) }
                }
            }
        }
        if let directory = cgroup.v2Directory { checkPath("cgroup.v2Directory", directory) }
        for (i, file) in cgroup.v1ProcsFiles.enumerated() {
            checkPath("cgroup.v1ProcsFiles[\(i)]", file)
            if file.split(separator: "/").last != "cgroup.procs" {
                issue("cgroup.v1ProcsFiles[\(i)]", quoted(file), "is not a cgroup.procs file")
            }
        }
        if let jail {
            checkPath("jail.root", jail.root)
            if jail.root.split(separator: "/").isEmpty { issue("jail.root", quoted(jail.root), "is the host's root") }
            var targets: Set<String> = []
            for (i, mount) in jail.mounts.enumerated() {
                checkPath("jail.mounts[\(i)].source", mount.source)
                checkPath("jail.mounts[\(i)].target", mount.target)
                if mount.target.split(separator: "/").isEmpty {
                    issue("jail.mounts[\(i)].target", quoted(mount.target), "is the jail's root itself")
                }
                if !targets.insert(JailPlan.normalized(mount.target)).inserted {
                    issue("jail.mounts[\(i)].target", quoted(mount.target), "is mounted twice")
                }
            }
            if jail.mountProc {
                if !newPIDNamespace {
                    issue("jail.mountProc", "true", "needs newPIDNamespace: a procfs of the host's PID namespace would show every host process")
                }
                if !targets.insert("/proc").inserted { issue("jail.mountProc", "true", "collides with a mount at /proc") }
            }
            for (i, device) in jail.devices.enumerated() {
                checkPath("jail.devices[\(i)]", device)
                if !device.hasPrefix("/dev/") { issue("jail.devices[\(i)]", quoted(device), "is not under /dev") }
                if !targets.insert(JailPlan.normalized(device)).inserted {
                    issue("jail.devices[\(i)]", quoted(device), "is mounted twice")
                }
            }
        }
        return issues
    }

    /// One issue per syscall the launcher's child needs that `policy` does not allow outright.
    static func launcherRequirementIssues(_ policy: SeccompPolicy) -> [FieldIssue] {
        policy.missingLauncherRequirements.map { name in
            FieldIssue(field: "spawn.seccomp.rules", value: "no unconditional rule for \(name)",
                       reason: "is needed: the launcher calls \(name) after loading the filter (exec, or reporting a failed exec)")
        }
    }

    /// Throws every problem at once, each naming its field.
    public func validate() throws(SpawnPlanError) {
        let found = issues()
        if !found.isEmpty { throw SpawnPlanError(issues: found) }
    }
}

private func quoted(_ text: String) -> String { "\"\(text)\"" }

/// A plan that cannot be launched, with every reason.
public struct SpawnPlanError: Error, Hashable, Sendable, CustomStringConvertible {
    public let issues: [FieldIssue]
    public var description: String { issues.map(\.description).joined(separator: "; ") }
}

/// The credentials a launched program runs with.
public struct UserIdentity: Hashable, Sendable {
    public var uid: UInt32
    public var gid: UInt32
    /// The complete supplementary group list (the launcher's groups are dropped).
    public var supplementaryGroups: [UInt32]

    public init(uid: UInt32, gid: UInt32, supplementaryGroups: [UInt32] = []) {
        self.uid = uid
        self.gid = gid
        self.supplementaryGroups = supplementaryGroups
    }

    /// 65534:65534, no supplementary groups.
    public static let nobody = UserIdentity(uid: 65534, gid: 65534)
}

/// A soft/hard pair for one resource; `UInt64.max` is unlimited (`RLIM_INFINITY`).
public struct ResourceLimit: Hashable, Sendable {
    public enum Resource: Hashable, Sendable, CaseIterable, CustomStringConvertible {
        case core
        case nofile
        case memlock
        case nproc
        case fsize
        case addressSpace

        public var description: String {
            switch self {
            case .core: "RLIMIT_CORE"
            case .nofile: "RLIMIT_NOFILE"
            case .memlock: "RLIMIT_MEMLOCK"
            case .nproc: "RLIMIT_NPROC"
            case .fsize: "RLIMIT_FSIZE"
            case .addressSpace: "RLIMIT_AS"
            }
        }
    }

    public static let unlimited = UInt64.max

    public var soft: UInt64
    public var hard: UInt64

    public init(soft: UInt64, hard: UInt64) {
        self.soft = soft
        self.hard = hard
    }

    /// Soft and hard both `value`.
    public init(_ value: UInt64) { self.init(soft: value, hard: value) }
}

/// A new root for the child: a per-VM directory on which only the listed entries are
/// bind-mounted, then `pivot_root`ed into in a private mount namespace. The launcher creates the
/// missing mount points (empty directories or files) inside `root`; the mounts exist only in the
/// child's namespace and vanish with it.
public struct JailPlan: Hashable, Sendable {
    /// Where the jail's root is mounted: a tmpfs private to the VMM's mount namespace that becomes
    /// `/` and holds only the mount points. The host directory must exist; its content stays hidden.
    public var root: String
    /// Kernel, initramfs, disks, libraries: host paths mounted at paths inside the jail.
    public var mounts: [BindMount]
    /// Host device nodes (e.g. `/dev/kvm`) bind-mounted at the same path inside the jail, writable.
    public var devices: [String]
    /// Mounts a fresh procfs at `/proc` (nosuid, nodev, noexec). With a new PID namespace it shows
    /// only the VMM's own processes; requires `SpawnPlan.newPIDNamespace`.
    public var mountProc: Bool

    public init(root: String, mounts: [BindMount] = [], devices: [String] = [], mountProc: Bool = false) {
        self.root = root
        self.mounts = mounts
        self.devices = devices
        self.mountProc = mountProc
    }

    /// The device nodes a VMM may use: `/dev/kvm`, `/dev/net/tun`, `/dev/vhost-net`.
    public static let vmmDevices = ["/dev/kvm", "/dev/net/tun", "/dev/vhost-net"]

    static func normalized(_ path: String) -> String {
        "/" + path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }

    /// `root` joined with a path inside the jail.
    func hostPath(_ inside: String) -> String {
        let trimmedRoot = root.hasSuffix("/") ? String(root.dropLast()) : root
        return trimmedRoot + JailPlan.normalized(inside)
    }
}

/// A host path made visible inside the jail.
public struct BindMount: Hashable, Sendable {
    /// The host path (file or directory).
    public var source: String
    /// The path inside the jail.
    public var target: String
    /// Mounted read-only (and nosuid, nodev) — the default: a VMM only writes its disks.
    public var readOnly: Bool
    /// A device node (mounted without nodev, noexec instead), e.g. a private `/dev/kvm` node the
    /// node made for the VMM's uid, mounted at `/dev/kvm` inside the jail.
    public var device: Bool

    public init(source: String, target: String, readOnly: Bool = true, device: Bool = false) {
        self.source = source
        self.target = target
        self.readOnly = readOnly
        self.device = device
    }

    /// `source` mounted at the same path inside the jail.
    public init(_ path: String, readOnly: Bool = true) {
        self.init(source: path, target: path, readOnly: readOnly)
    }
}
