import Foundation
public import LinuxSys
public import VMModel
#if canImport(Glibc)
import Glibc
#endif

/// Runs VMs with `qemu-system-x86_64` under KVM, through the same jailed launcher, supervision and
/// state machine as cloud-hypervisor.
///
/// The process, as launched (``QEMUCommandLine`` builds the arguments, this adds the node's side):
/// - `-S`: QEMU starts with its vCPUs stopped, so the node is connected to QMP and sees every event
///   before the guest runs a single instruction; `vm.create` checks QEMU is ready (`query-status`)
///   and `vm.boot` is `cont`.
/// - QMP on fd 3: a Unix socket the node bound and listens on before the spawn
///   (`-chardev socket,fd=3,server=on`); the node connects by its path in the per-boot channel
///   directory, with no polling for a socket file.
/// - The serial port (`tty`) into a FIFO whose read end the supervisor drains into the VM's console
///   log, as for cloud-hypervisor (a restarted node reopens it). QEMU has no chardev taking an
///   inherited fd for output, so it opens `/proc/self/fd/4` (the FIFO's write end it inherited):
///   the FIFO belongs to the VMM's uid (the reopen checks the inode's permissions) and the jail
///   mounts a procfs. QEMU also inherits an unused read end (fd 5), so its writes never fail with
///   EPIPE while no node reads; past a pipe buffer (64 KiB) unread, the guest's serial output stalls.
/// - stdout and stderr (fds 1, 2) into `vmm.log`.
/// - TAP/MACVTAP queue fds from 6 on (`-netdev tap,fd=`/`fds=`), `vhost=off`; then one fd per disk
///   image, opened by the node (read-only when the disk is), in an fd set (`-add-fd`) its `file`
///   blockdev opens as `/dev/fdset/N`: the VMM's uid needs no access to the image.
/// - The jail: a private mount namespace whose root holds only QEMU, its libraries and firmware,
///   the guest's payload, a private `/dev/kvm` node owned by the VMM's uid (the host's
///   node stays root-only), the RNG source, and its own procfs in its own PID namespace. No
///   capabilities, no_new_privs, the node's outer seccomp filter and QEMU's own (`-sandbox on`), its
///   own uid and cgroup, an allowlisted environment.
///
/// Operations: pause = `stop`, resume = `cont`, reboot = `system_reset`, power button =
/// `system_powerdown`; the graceful teardown step presses the power button of a running guest,
/// waits up to ``powerdownGrace`` for it to power off, then sends `quit`; delete = `quit`.
public struct QEMUBackend: VMMBackend {
    public var kind: VMMKind { .qemu }
    /// An absolute path to `qemu-system-x86_64`.
    public let binary: String
    /// Deadline of one QMP command (and of QEMU's greeting after the spawn).
    public let callTimeout: Duration
    /// How long the graceful teardown step waits for a guest to act on the power button before
    /// `quit`; zero skips the power button.
    public let powerdownGrace: Duration
    /// Host directories QEMU needs at run time (its shared libraries and firmware), bind-mounted
    /// read-only into the jail where they exist.
    public let runtimeMounts: [String]

    /// Child descriptor numbers.
    static let qmpFD: Int32 = 3
    static let serialFD: Int32 = 4
    static let serialKeeperFD: Int32 = 5
    static let firstNICFD: Int32 = 6

    public static let defaultRuntimeMounts = ["/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/share/qemu", "/usr/share/seabios"]

    public init(binary: String, callTimeout: Duration = .seconds(10), powerdownGrace: Duration = .seconds(3),
                runtimeMounts: [String] = QEMUBackend.defaultRuntimeMounts) throws(VMMBackendError) {
        guard binary.hasPrefix("/") else {
            throw VMMBackendError(backend: .qemu, operation: "use \(binary)", reason: "the QEMU binary must be an absolute path")
        }
        self.binary = binary
        self.callTimeout = callTimeout
        self.powerdownGrace = powerdownGrace
        self.runtimeMounts = runtimeMounts
    }

    public func validate(_ spec: VMSpec) -> [SpecProblem] {
        let machine = QEMUCommandLine.machine(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: Self.qmpFD))
        var rules = QEMUBackendRules(machine: machine)
        rules.check(spec)
        var problems = rules.problems
        for (field, console) in [("serial.mode", spec.serial), ("console.mode", spec.console)] {
            switch console.mode {
            case .off, .null, .tty: continue
            case .pty, .file, .socket:
                problems.append(SpecProblem(
                    field: field,
                    reason: "\(console.mode.rawValue) is not available with the qemu backend on a node (QEMU runs jailed; tty goes to the node's console log)"))
            }
        }
        return problems
    }

    /// Paths of the per-boot channels.
    struct Channels {
        let directory: String
        var qmpSocket: String { directory + "/qmp.sock" }
        var serial: String { directory + "/serial.fifo" }
        var jailRoot: String { directory + "/jail" }
        var kvmNode: String { directory + "/kvm" }
    }

    static func channels(_ runtime: VMRuntimeDirectory) -> Channels {
        Channels(directory: HostPreparation.channelDirectory(runtime))
    }

    public func launch(for context: VMMLaunchContext) throws(VMMBackendError) -> VMMLaunch {
        let channels = Self.channels(context.runtime)
        let childEnds = DescriptorBag()
        let nodeEnds = DescriptorBag()
        func fail(_ operation: String, _ reason: String) -> VMMBackendError {
            childEnds.closeAll()
            nodeEnds.closeAll()
            return VMMBackendError(backend: .qemu, operation: operation, reason: reason)
        }
        do throws(SystemError) {
            _ = unlink(channels.qmpSocket)
            childEnds.put("qmp", try UnixSocket.listen(path: channels.qmpSocket))
            try CloudHypervisorBackend.makeFIFO(channels.serial)
            guard chown(channels.serial, context.user.uid, context.user.gid) == 0 else {
                throw SystemError("chown \(channels.serial)", errno: errno)
            }
            nodeEnds.put("serial", try FileDescriptor.open(channels.serial, O_RDONLY | O_NONBLOCK | O_CLOEXEC))
            childEnds.put("serial", try FileDescriptor.open(channels.serial, O_WRONLY | O_NONBLOCK | O_CLOEXEC))
            childEnds.put("serialKeeper", try FileDescriptor.open(channels.serial, O_RDONLY | O_NONBLOCK | O_CLOEXEC))
            childEnds.put("log", try FileDescriptor.open(context.runtime.vmmLog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode: 0o600))
            try Self.makeKVMNode(channels.kvmNode, owner: context.user)
            if mkdir(channels.jailRoot, 0o755) != 0 && errno != EEXIST {
                throw SystemError("mkdir \(channels.jailRoot)", errno: errno)
            }
        } catch {
            throw fail("create the VMM's channels in \(channels.directory)", "\(error)")
        }
        guard let serialReader = nodeEnds.take("serial") else {
            throw fail("open the serial FIFO", "missing")
        }
        let output = VMOutput(name: "serial", reading: serialReader, logPath: serialLog(context.runtime))

        var descriptors: [Int32: Int32] = [:]
        for (child, name) in [(1, "log"), (2, "log"), (Self.qmpFD, "qmp"), (Self.serialFD, "serial"),
                              (Self.serialKeeperFD, "serialKeeper")] as [(Int32, String)] {
            if let raw = childEnds.raw(name) { descriptors[child] = raw }
        }
        var hostNICs: [String: QEMUHostNIC] = [:]
        var next = Self.firstNICFD
        for nic in context.nics {
            var numbers: [Int32] = []
            for fd in nic.queueDescriptors {
                descriptors[next] = fd
                numbers.append(next)
                next += 1
            }
            hostNICs[nic.device.id] = QEMUHostNIC(fds: numbers, mac: nic.device.mac)
        }
        var diskSets: [String: Int] = [:]
        var addFD: [String] = []
        for disk in context.spec.disks where !disk.vhostUser {
            guard let path = disk.path else { continue }
            let name = "disk-\(disk.id)"
            do {
                childEnds.put(name, try FileDescriptor.open(path, (disk.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC))
            } catch {
                throw fail("open disk \(disk.id)", "\(error)")
            }
            guard let raw = childEnds.raw(name) else { continue }
            descriptors[next] = raw
            diskSets[disk.id] = diskSets.count + 1
            addFD += ["-add-fd", "fd=\(next),set=\(diskSets.count),opaque=\(name)"]
            next += 1
        }
        var configuration = QEMULaunchConfiguration(qmpListenerFD: Self.qmpFD, console: .inheritedFD(Self.serialFD), nics: hostNICs)
        configuration.diskFDSets = diskSets
        let commandLine: QEMUCommandLine
        do {
            commandLine = try QEMUCommandLine.build(for: context.spec, configuration: configuration)
        } catch {
            throw fail("build the command line", error.description)
        }

        var limits = SpawnPlan.defaultResourceLimits
        limits[.nofile] = ResourceLimit(4096)
        if context.spec.memory.hugepages || context.spec.memory.shared {
            limits[.memlock] = ResourceLimit(ResourceLimit.unlimited)
        }
        var plan = SpawnPlan(
            executable: binary,
            arguments: [binary] + addFD + commandLine.arguments + ["-S"],
            environment: context.environment,
            fileDescriptors: descriptors,
            user: context.user,
            resourceLimits: limits,
            seccomp: context.seccomp,
            cgroup: context.cgroup
        )
        plan.jail = jail(for: context.spec, channels: channels)
        plan.newPIDNamespace = true
        return VMMLaunch(plan: plan, childEnds: childEnds, nodeEnds: nodeEnds, outputs: [output])
    }

    /// QEMU's view of the file system: only what it runs with.
    func jail(for spec: VMSpec, channels: Channels) -> JailPlan {
        var mounts: [BindMount] = [BindMount(binary)]
        var seen: Set<String> = [binary]
        func add(_ path: String?, readOnly: Bool = true) {
            guard let path, !seen.contains(path), access(path, F_OK) == 0 else { return }
            seen.insert(path)
            mounts.append(BindMount(path, readOnly: readOnly))
        }
        for directory in runtimeMounts { add(directory) }
        add(spec.payload.kernel)
        add(spec.payload.initramfs)
        add(spec.payload.firmware)
        mounts.append(BindMount(source: channels.kvmNode, target: "/dev/kvm", readOnly: false, device: true))
        var devices: [String] = []
        if spec.rng.source.hasPrefix("/dev/") { devices.append(spec.rng.source) } else { add(spec.rng.source) }
        return JailPlan(root: channels.jailRoot, mounts: mounts, devices: devices, mountProc: true)
    }

    /// A private `/dev/kvm` node (same device numbers as the host's) owned by the VMM's uid, mode 0600.
    static func makeKVMNode(_ path: String, owner: UserIdentity) throws(SystemError) {
        var info = stat()
        guard stat("/dev/kvm", &info) == 0 else { throw SystemError("stat /dev/kvm", errno: errno) }
        _ = unlink(path)
        guard mknod(path, S_IFCHR | 0o600, info.st_rdev) == 0 else { throw SystemError("mknod \(path)", errno: errno) }
        guard chown(path, owner.uid, owner.gid) == 0 else { throw SystemError("chown \(path)", errno: errno) }
    }

    public func connect(_ context: VMMLaunchContext, launch: VMMLaunch, process: ProcessIdentity) async throws(VMMBackendError) -> any VMMControl {
        launch.nodeEnds.closeAll()
        return try await control(context)
    }

    public func reconnect(_ context: VMMLaunchContext, process: ProcessIdentity) async throws(VMMBackendError)
        -> (control: any VMMControl, outputs: [VMOutput]) {
        let channels = Self.channels(context.runtime)
        let serial: FileDescriptor
        do {
            serial = try FileDescriptor.open(channels.serial, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        } catch {
            throw VMMBackendError(backend: .qemu, operation: "reopen the serial FIFO", reason: "\(error)")
        }
        let output = VMOutput(name: "serial", reading: serial, logPath: serialLog(context.runtime))
        return (try await control(context), [output])
    }

    private func control(_ context: VMMLaunchContext) async throws(VMMBackendError) -> QEMUControl {
        let path = Self.channels(context.runtime).qmpSocket
        let connected = await QEMUControl.withDeadline(callTimeout) { () async -> Result<QMPClient, QMPError> in
            do throws(QMPError) { return .success(try await QMPClient.connect(socketPath: path)) } catch { return .failure(error) }
        }
        switch connected {
        case .success(let client):
            return QEMUControl(client: client, spec: context.spec, callTimeout: callTimeout, powerdownGrace: powerdownGrace)
        case .failure(let error):
            throw VMMBackendError(backend: .qemu, operation: "connect to QMP at \(path)",
                                  reason: error.description + Self.logTail(context.runtime.vmmLog))
        case nil:
            throw VMMBackendError(backend: .qemu, operation: "connect to QMP at \(path)",
                                  reason: "no greeting within \(callTimeout)" + Self.logTail(context.runtime.vmmLog))
        }
    }

    /// The last lines QEMU wrote on stderr (why it did not start), as `; QEMU said: …`.
    static func logTail(_ path: String) -> String {
        let tail = VMInstance.tail(of: path).split(separator: "\n").suffix(5).joined(separator: " | ")
        return tail.isEmpty ? "" : "; QEMU said: \(tail)"
    }

    /// The state machine's event for a QMP event; `nil` for events it does not read.
    public static func stateEvent(for event: QMPEvent.Kind) -> VMStateMachine.Event? {
        switch event {
        case .stop: .vmPaused
        case .resume: .vmResumed
        case .shutdown(_, let reason) where reason == .guestPanic: .guestPanic
        case .shutdown(_, let reason) where reason == .hostQMPQuit || reason == .hostSignal || reason == .hostUI: .vmmShutdown
        case .shutdown: .vmShutdown
        case .reset: .vmRebooted
        case .guestPanicked: .guestPanic
        case .powerdown, .deviceDeleted, .other: nil
        }
    }

    /// How a failed QMP exchange looks to the VM's state machine: a refused command is `rejected`
    /// (QEMU is alive), a closed connection `vmmGone`, anything else `noAnswer`.
    public static func callError(_ error: QMPError) -> VMStateMachine.CallError {
        switch error {
        case .command(let command, let errorClass, let description):
            VMStateMachine.CallError(.rejected(status: 500), chain: ["QMP \(command)", "\(errorClass): \(description)"])
        case .disconnected:
            VMStateMachine.CallError(.vmmGone, chain: [error.description])
        case .system, .malformed, .lineTooLong, .cancelled:
            VMStateMachine.CallError(.noAnswer, chain: [error.description])
        }
    }
}
