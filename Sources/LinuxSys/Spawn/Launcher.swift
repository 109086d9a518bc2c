#if canImport(Glibc)
import Glibc
#endif
import CShims
import Synchronization

/// Starts confined processes from `SpawnPlan`s: `clone3` (with a pidfd, straight into a cgroup v2
/// when asked, in new mount/PID namespaces when asked), then one C function in the child carries
/// out the plan and `execve`s. A failing step comes back as `LaunchError.childStep(step, errno:)`.
///
/// Everything the child touches — argv, envp, paths, the fd map, the capability words, the seccomp
/// program — is prepared here, in the parent, before `clone3`.
public enum Launcher {
    /// Launches and returns once the program runs (its `execve` succeeded) or a step failed.
    ///
    /// Blocks the calling thread for the child's setup (clone3, then reading the report pipe to
    /// EOF): call it from a thread of your own, never from Swift's cooperative pool; async code
    /// uses `launch(_:)`.
    public static func launchBlocking(_ plan: SpawnPlan) throws(LaunchError) -> SpawnedProcess {
        // A policy already in the cache passed every check when it was compiled; checking its
        // ~200 rules again on every launch would cost more than the clone itself.
        let cached = plan.seccomp.flatMap { policy in programCache.withLock { $0[policy] } }
        let issues = plan.issues(checkingSeccompRules: cached == nil)
        if !issues.isEmpty { throw .invalidPlan(SpawnPlanError(issues: issues)) }
        let program: SeccompProgram?
        if let cached {
            program = cached
        } else if let policy = plan.seccomp {
            program = try compiledProgram(for: policy)
        } else {
            program = nil
        }

        let arena = CArena()
        var request = qx_spawn_request()
        request.path = arena.constString(plan.executable)
        request.argv = arena.stringArray(plan.arguments)
        request.envp = arena.stringArray(plan.environmentStrings)
        if let directory = plan.workingDirectory { request.working_directory = arena.constString(directory) }

        // Descriptors: the plan's map plus /dev/null on unmapped stdio. Held open until qx_spawn returns.
        var mapping = plan.fileDescriptors
        let devNull: FileDescriptor?
        if plan.standardStreamsToDevNull && (0...2).contains(where: { mapping[$0] == nil }) {
            let null: FileDescriptor
            do {
                null = try FileDescriptor.open("/dev/null", O_RDWR)
            } catch {
                throw .parent(.fileDescriptors, error)
            }
            for slot: Int32 in 0...2 where mapping[slot] == nil { mapping[slot] = null.rawValue }
            devNull = consume null
        } else {
            devNull = nil
        }
        let fdPairs = mapping.keys.sorted().map { qx_spawn_fd(parent_fd: mapping[$0] ?? -1, child_fd: $0) }
        request.fds = arena.constBuffer(fdPairs)
        request.fd_count = Int32(fdPairs.count)
        request.fd_scratch = arena.buffer(repeating: Int32(-1), count: fdPairs.count)

        // cgroups: v2 through CLONE_INTO_CGROUP (needs an open directory), v1 joined by the child.
        let cgroupDirectory: FileDescriptor?
        request.cgroup_v2_fd = -1
        if let directory = plan.cgroup.v2Directory {
            let opened: FileDescriptor
            do {
                opened = try FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY)
            } catch {
                throw .parent(.clone, error)
            }
            request.cgroup_v2_fd = opened.rawValue
            cgroupDirectory = consume opened
        } else {
            cgroupDirectory = nil
        }
        let v1Files = plan.cgroup.v1ProcsFiles.map(Self.v1TasksFile)
        request.cgroup_v1_procs = arena.constStringArray(v1Files)
        request.cgroup_v1_count = Int32(v1Files.count)
        request.new_session = plan.newSession ? 1 : 0

        if let jail = plan.jail {
            let points = mountPoints(jail)
            request.jail_root = arena.constString(jail.root)
            request.jail_directories = arena.constStringArray(points.directories)
            request.jail_directory_count = Int32(points.directories.count)
            request.jail_files = arena.constStringArray(points.files)
            request.jail_file_count = Int32(points.files.count)
            var mounts = jail.mounts.map { mount in
                qx_spawn_mount(source: arena.constString(mount.source), target: arena.constString(jail.hostPath(mount.target)),
                               flags: (mount.readOnly ? UInt32(QX_MOUNT_READONLY) : 0) | (mount.device ? UInt32(QX_MOUNT_DEVICE) : 0))
            }
            mounts += jail.devices.map { device in
                qx_spawn_mount(source: arena.constString(device), target: arena.constString(jail.hostPath(device)),
                               flags: UInt32(QX_MOUNT_DEVICE))
            }
            request.mounts = arena.constBuffer(mounts)
            request.mount_count = Int32(mounts.count)
            if jail.mountProc { request.proc_target = arena.constString(jail.hostPath("/proc")) }
        }
        request.new_pid_namespace = plan.newPIDNamespace ? 1 : 0

        let limits = ResourceLimit.Resource.allCases.compactMap { resource in
            plan.resourceLimits[resource].map { qx_spawn_rlimit(resource: resource.kernelValue, soft: $0.soft, hard: $0.hard) }
        }
        request.rlimits = arena.constBuffer(limits)
        request.rlimit_count = Int32(limits.count)

        if let user = plan.user {
            request.set_ids = 1
            request.uid = user.uid
            request.gid = user.gid
            request.groups = arena.constBuffer(user.supplementaryGroups)
            request.group_count = Int32(user.supplementaryGroups.count)
        }

        request.cap_last = lastCapability
        request.cap_bounding = plan.capabilities.bounding.bits
        request.cap_permitted = plan.capabilities.permitted.bits
        request.cap_effective = plan.capabilities.effective.bits
        request.cap_inheritable = plan.capabilities.inheritable.bits
        request.cap_ambient = plan.capabilities.ambient.bits
        request.no_new_privs = plan.noNewPrivileges ? 1 : 0

        if let program {
            request.seccomp_filter = UnsafeRawPointer(arena.constBuffer(program.bytes))
            request.seccomp_length = UInt16(program.instructionCount)
        }

        var result = qx_spawn_result()
        let status = qx_spawn(&request, &result)
        withExtendedLifetime(arena) {}
        _ = consume devNull
        _ = consume cgroupDirectory
        if status < 0 { throw .parent(.clone, SystemError("clone3", negated: status)) }
        if result.failed_step != 0 {
            throw .childStep(LaunchStep(rawValue: result.failed_step) ?? .exec, errno: result.failed_errno)
        }

        let pidfd = FileDescriptor(adopting: result.pidfd)
        let identity: ProcessIdentity
        do {
            identity = try ProcessIdentity.of(pid: result.pid)
        } catch {
            // Cannot happen for an unreaped child; if it does, leave nothing behind.
            _ = qx_pidfd_send_signal(pidfd.rawValue, SIGKILL)
            var code: Int32 = 0
            var signal: Int32 = 0
            _ = qx_pidfd_wait(pidfd.rawValue, &code, &signal)
            throw .parent(.exec, error)
        }
        return SpawnedProcess(pid: result.pid, pidfd: pidfd, identity: identity)
    }

    /// Launches on a dedicated thread so the cooperative pool never blocks; see `launchBlocking`.
    /// Not cancellable: once started, a launch runs to its end (exec or a reported step), so a
    /// cancelled caller never leaves a half-set-up child behind.
    public static func launch(_ plan: SpawnPlan) async throws(LaunchError) -> SpawnedProcess {
        let outcome: Result<LaunchedRaw, LaunchError> = await SpawnThread.run {
            do throws(LaunchError) {
                let process = try launchBlocking(plan)
                let identity = process.identity
                let pid = process.pid
                let fd = process.pidfd.take()
                return .success(LaunchedRaw(pid: pid, pidfd: fd, identity: identity))
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case .success(let raw):
            return SpawnedProcess(pid: raw.pid, pidfd: FileDescriptor(adopting: raw.pidfd), identity: raw.identity)
        case .failure(let error):
            throw error
        }
    }

    /// The seccomp program of `policy`, compiled once per distinct policy. Only policies a launch
    /// can use are cached (see `SeccompPolicy.launcherRequirements`).
    public static func compiledProgram(for policy: SeccompPolicy) throws(LaunchError) -> SeccompProgram {
        if let cached = programCache.withLock({ $0[policy] }) { return cached }
        let program: SeccompProgram
        do {
            program = try policy.compile()
        } catch {
            throw .seccomp(error)
        }
        let missing = SpawnPlan.launcherRequirementIssues(policy)
        if !missing.isEmpty { throw .invalidPlan(SpawnPlanError(issues: missing)) }
        programCache.withLock { cache in
            if cache.count >= 32 { cache.removeAll() }
            cache[policy] = program
        }
        return program
    }

    private static let programCache = Mutex<[SeccompPolicy: SeccompProgram]>([:])

    /// The `tasks` file next to a v1 `cgroup.procs`: the child joins each v1 group by writing "0"
    /// (itself) there. Its only thread is the whole process, so moving that thread moves the
    /// process; and a move of the writer's own single thread skips the cgroup core's global
    /// threadgroup lock, whose write side waits for an RCU grace period (5–24 ms per spawn
    /// measured on this kernel with `cgroup.procs`, ~0.1 ms with `tasks`).
    static func v1TasksFile(_ procsFile: String) -> String {
        guard procsFile.hasSuffix("/cgroup.procs") else { return procsFile }
        return String(procsFile.dropLast("cgroup.procs".count)) + "tasks"
    }

    /// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
    static let lastCapability: Int32 = {
        if let text = try? readProcFile("/proc/sys/kernel/cap_last_cap"),
           let value = Int32(text.split(separator: "\n").first ?? "") {
            return value
        }
        return Capability.allCases.last?.rawValue ?? 40
    }()

    /// The mount points the child makes in the jail's tmpfs (host-side paths): directories, parents
    /// first, for `/proc` and for directory sources and the parents of file targets; empty files for
    /// files and device nodes. An entry whose source is missing gets none, so its bind mount fails
    /// in the child with the kernel's errno.
    static func mountPoints(_ jail: JailPlan) -> (directories: [String], files: [String]) {
        var directories: [String] = []
        var files: [String] = []
        var seen: Set<String> = []
        func addDirectory(_ path: String) {
            if seen.insert(path).inserted { directories.append(path) }
        }
        let root = jail.root.hasSuffix("/") ? String(jail.root.dropLast()) : jail.root
        if jail.mountProc { addDirectory(jail.hostPath("/proc")) }
        let entries = jail.mounts.map { ($0.source, $0.target) } + jail.devices.map { ($0, $0) }
        for (source, target) in entries {
            var info = stat()
            guard stat(source, &info) == 0 else { continue }
            let components = JailPlan.normalized(target).split(separator: "/").map(String.init)
            let isDirectorySource = info.st_mode & S_IFMT == S_IFDIR
            var path = root
            for component in isDirectorySource ? components : Array(components.dropLast()) {
                path += "/" + component
                addDirectory(path)
            }
            if !isDirectorySource { files.append(jail.hostPath(target)) }
        }
        return (directories, files)
    }
}

extension ResourceLimit.Resource {
    /// The `RLIMIT_*` number of this architecture.
    var kernelValue: Int32 {
        switch self {
        case .core: Int32(RLIMIT_CORE.rawValue)
        case .nofile: Int32(RLIMIT_NOFILE.rawValue)
        case .memlock: Int32(__RLIMIT_MEMLOCK.rawValue)
        case .nproc: Int32(__RLIMIT_NPROC.rawValue)
        case .fsize: Int32(RLIMIT_FSIZE.rawValue)
        case .addressSpace: Int32(RLIMIT_AS.rawValue)
        }
    }
}

extension JailPlan {
    /// Those of `candidates` that exist on this host (`/dev/vhost-net` is often absent).
    public static func presentDevices(_ candidates: [String] = JailPlan.vmmDevices) -> [String] {
        candidates.filter { access($0, F_OK) == 0 }
    }
}

/// A launched process in transit from the launch thread: the pidfd number is owned by whoever
/// holds this value and is adopted exactly once.
private struct LaunchedRaw: Sendable {
    let pid: Int32
    let pidfd: Int32
    let identity: ProcessIdentity
}

/// C memory for one launch: every string and array the child reads, freed after `qx_spawn`.
private final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    func buffer<T>(repeating value: T, count: Int) -> UnsafeMutablePointer<T> {
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
        pointer.initialize(repeating: value, count: max(count, 1))
        allocations.append(UnsafeMutableRawPointer(pointer))
        return pointer
    }

    func mutableBuffer<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: max(values.count, 1))
        values.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { pointer.initialize(from: base, count: source.count) }
        }
        allocations.append(UnsafeMutableRawPointer(pointer))
        return pointer
    }

    func constBuffer<T>(_ values: [T]) -> UnsafePointer<T> { UnsafePointer(mutableBuffer(values)) }

    func string(_ text: String) -> UnsafeMutablePointer<CChar> { mutableBuffer(Array(text.utf8CString)) }

    func constString(_ text: String) -> UnsafePointer<CChar> { UnsafePointer(string(text)) }

    /// A NULL-terminated `char *[]`.
    func stringArray(_ texts: [String]) -> UnsafePointer<UnsafeMutablePointer<CChar>?> {
        constBuffer(texts.map { Optional(string($0)) } + [nil])
    }

    func constStringArray(_ texts: [String]) -> UnsafePointer<UnsafePointer<CChar>?> {
        constBuffer(texts.map { Optional(constString($0)) } + [nil])
    }

    deinit {
        for allocation in allocations { allocation.deallocate() }
    }
}

/// Runs blocking launch work on a thread of its own, so async callers never block the pool.
enum SpawnThread {
    private final class Job {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let job = Unmanaged.passRetained(Job { continuation.resume(returning: body()) })
            var thread = pthread_t()
            let created = pthread_create(&thread, nil, { context in
                if let context { Unmanaged<Job>.fromOpaque(context).takeRetainedValue().body() }
                return nil
            }, job.toOpaque())
            if created == 0 {
                pthread_detach(thread)
            } else {
                // No thread to be had (EAGAIN under a thread limit): run here rather than never.
                job.takeRetainedValue().body()
            }
        }
    }
}
