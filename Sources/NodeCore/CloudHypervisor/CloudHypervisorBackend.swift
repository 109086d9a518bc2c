import CloudHypervisorAPI
import Foundation
public import LinuxSys
public import VMModel
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs VMs with cloud-hypervisor (or its test double, `ch-sim`: the binary is configuration).
///
/// The process, as launched:
/// - `--api-socket fd=3`: a Unix socket the node bound and listens on before the spawn, so the
///   first call can connect at once (nothing polls for a socket file). The client connects by its
///   path in the VM's per-boot channel directory.
/// - `--event-monitor fd=4`: the write end of a FIFO. The node reads it through the reactor into
///   ``CHEventParser`` and the VM's state machine.
/// - Serial `Tty` (the VMM's stdout, fd 1) into a second FIFO whose read end the supervisor drains
///   into the VM's rotated console log; console `Off` unless the specification asks otherwise.
///   **FIFOs, not pipes**: a pipe's read end dies with the node daemon and cannot be reopened,
///   while a FIFO can be reopened by a restarted node, which then re-adopts the VMM with its event
///   stream and console. Each FIFO's write end is non-blocking and the VMM also inherits an unused
///   read end (fds 5 and 6), so while no node reads, the VMM's writes neither fail with EPIPE nor
///   stall a vCPU: at most a pipe buffer (64 KiB) waits, the rest is dropped.
/// - stderr (fd 2) into `vmm.log` (the VMM's own log; read for vCPU-failure lines on a status-0 exit).
/// - `--seccomp true` (cloud-hypervisor's own per-thread filters) inside the node's outer filter,
///   no capabilities, no_new_privs, its own uid and cgroup, an allowlisted environment.
///
/// Host NICs reach the VMM as fds with `vm.add-net` between `vm.create` and `vm.boot`: the reason
/// is written on ``VmConfigTranslation`` (a named TAP would need CAP_NET_ADMIN in the VMM, a MACVTAP
/// cannot be opened by name through `/dev/net/tun`, and `vm.create` takes no fds).
public struct CloudHypervisorBackend: VMMBackend {
    public var kind: VMMKind { .cloudHypervisor }
    public let binary: String
    /// Deadline of one API call.
    public let callTimeout: Duration
    /// Every `vm.create` and `vm.add-net` body is checked against cloud-hypervisor's API document
    /// before it is sent (the VMM itself accepts bodies the document forbids).
    private let validator: SchemaCheck

    /// Child descriptor numbers.
    static let apiFD: Int32 = 3
    static let eventFD: Int32 = 4
    static let eventKeeperFD: Int32 = 5
    static let serialKeeperFD: Int32 = 6

    /// Loads the API document once (it is parsed here, not per VM).
    public init(binary: String, callTimeout: Duration = .seconds(10)) throws(VMMBackendError) {
        self.binary = binary
        self.callTimeout = callTimeout
        do {
            validator = SchemaCheck(try OpenAPISchemaValidator.cloudHypervisor(options: .cloudHypervisor))
        } catch {
            throw VMMBackendError(backend: .cloudHypervisor, operation: "load the API document", reason: "\(error)")
        }
    }

    public func validate(_ spec: VMSpec) -> [SpecProblem] {
        var problems: [SpecProblem] = []
        for (index, nic) in spec.nics.enumerated() where nic.kind != .vhostUser {
            if nic.numQueues / 2 > UnixSocket.maxDescriptorsPerMessage {
                problems.append(SpecProblem(
                    field: "nics[\(index)].num_queues",
                    reason: "\(nic.numQueues) needs \(nic.numQueues / 2) fds in one vm.add-net; cloud-hypervisor backend passes at most \(UnixSocket.maxDescriptorsPerMessage)"))
            }
        }
        if spec.serial.mode == .pty || spec.console.mode == .pty || spec.console.mode == .tty && spec.serial.mode == .tty {
            let field = spec.serial.mode == .pty ? "serial.mode" : "console.mode"
            problems.append(SpecProblem(
                field: field,
                reason: "\(field == "serial.mode" ? spec.serial.mode.rawValue : spec.console.mode.rawValue) is not available with the cloud-hypervisor backend on a node (its terminal is the node's console log, which the serial port uses)"))
        }
        return problems
    }

    /// Paths of the per-boot channels.
    struct Channels {
        let directory: String
        var apiSocket: String { directory + "/api.sock" }
        var events: String { directory + "/events.fifo" }
        var serial: String { directory + "/serial.fifo" }
    }

    static func channels(_ runtime: VMRuntimeDirectory) -> Channels {
        Channels(directory: HostPreparation.channelDirectory(runtime))
    }


    public func launch(for context: VMMLaunchContext) throws(VMMBackendError) -> VMMLaunch {
        let channels = Self.channels(context.runtime)
        let childEnds = DescriptorBag()
        let nodeEnds = DescriptorBag()
        func fail(_ operation: String, _ error: SystemError) -> VMMBackendError {
            childEnds.closeAll()
            nodeEnds.closeAll()
            return VMMBackendError(backend: .cloudHypervisor, operation: operation, reason: "\(error)")
        }
        do throws(SystemError) {
            _ = unlink(channels.apiSocket)
            childEnds.put("api", try UnixSocket.listen(path: channels.apiSocket))
            try Self.makeFIFO(channels.events)
            try Self.makeFIFO(channels.serial)
            nodeEnds.put("events", try FileDescriptor.open(channels.events, O_RDONLY | O_NONBLOCK | O_CLOEXEC))
            childEnds.put("events", try FileDescriptor.open(channels.events, O_WRONLY | O_NONBLOCK | O_CLOEXEC))
            childEnds.put("eventsKeeper", try FileDescriptor.open(channels.events, O_RDONLY | O_NONBLOCK | O_CLOEXEC))
            nodeEnds.put("serial", try FileDescriptor.open(channels.serial, O_RDONLY | O_NONBLOCK | O_CLOEXEC))
            childEnds.put("serial", try FileDescriptor.open(channels.serial, O_WRONLY | O_NONBLOCK | O_CLOEXEC))
            childEnds.put("serialKeeper", try FileDescriptor.open(channels.serial, O_RDONLY | O_NONBLOCK | O_CLOEXEC))
            childEnds.put("log", try FileDescriptor.open(context.runtime.vmmLog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode: 0o600))
        } catch {
            throw fail("create the VMM's channels in \(channels.directory)", error)
        }
        guard let serialReader = nodeEnds.take("serial") else {
            throw fail("open the serial FIFO", SystemError("open \(channels.serial)", errno: EBADF))
        }
        let output = VMOutput(name: "serial", reading: serialReader, logPath: serialLog(context.runtime))
        var descriptors: [Int32: Int32] = [:]
        for (child, name) in [(1, "serial"), (2, "log"), (Self.apiFD, "api"), (Self.eventFD, "events"),
                              (Self.eventKeeperFD, "eventsKeeper"), (Self.serialKeeperFD, "serialKeeper")] as [(Int32, String)] {
            if let raw = childEnds.raw(name) { descriptors[child] = raw }
        }
        var limits = SpawnPlan.defaultResourceLimits
        limits[.nofile] = ResourceLimit(4096)
        if context.spec.memory.hugepages || context.spec.memory.shared {
            // Guest RAM on hugetlbfs/shared memory may be locked by vhost-user backends and VFIO.
            limits[.memlock] = ResourceLimit(ResourceLimit.unlimited)
        }
        let plan = SpawnPlan(
            executable: binary,
            arguments: [binary, "--api-socket", "fd=\(Self.apiFD)", "--event-monitor", "fd=\(Self.eventFD)",
                        "--seccomp", "true"],
            environment: context.environment,
            fileDescriptors: descriptors,
            user: context.user,
            resourceLimits: limits,
            seccomp: context.seccomp,
            cgroup: context.cgroup
        )
        return VMMLaunch(plan: plan, childEnds: childEnds, nodeEnds: nodeEnds, outputs: [output])
    }

    public func connect(_ context: VMMLaunchContext, launch: VMMLaunch, process: ProcessIdentity) async throws(VMMBackendError) -> any VMMControl {
        guard let events = launch.nodeEnds.take("events") else {
            throw VMMBackendError(backend: .cloudHypervisor, operation: "connect", reason: "the event channel was already taken")
        }
        return try control(context, events: events)
    }

    public func reconnect(_ context: VMMLaunchContext, process: ProcessIdentity) async throws(VMMBackendError)
        -> (control: any VMMControl, outputs: [VMOutput]) {
        let channels = Self.channels(context.runtime)
        let ends = DescriptorBag()
        do throws(SystemError) {
            ends.put("events", try FileDescriptor.open(channels.events, O_RDONLY | O_NONBLOCK | O_CLOEXEC))
            ends.put("serial", try FileDescriptor.open(channels.serial, O_RDONLY | O_NONBLOCK | O_CLOEXEC))
        } catch {
            throw VMMBackendError(backend: .cloudHypervisor, operation: "reopen the VMM's channels", reason: "\(error)")
        }
        guard let events = ends.take("events"), let serial = ends.take("serial") else {
            throw VMMBackendError(backend: .cloudHypervisor, operation: "reopen the VMM's channels", reason: "missing")
        }
        let output = VMOutput(name: "serial", reading: serial, logPath: serialLog(context.runtime))
        return (try control(context, events: events), [output])
    }

    private func control(_ context: VMMLaunchContext, events: consuming FileDescriptor) throws(VMMBackendError) -> CloudHypervisorControl {
        let client = CloudHypervisorClient(socketPath: Self.channels(context.runtime).apiSocket, timeout: callTimeout)
        do {
            return try CloudHypervisorControl(client: client, context: context, validator: validator, events: events)
        } catch {
            throw VMMBackendError(backend: .cloudHypervisor, operation: "watch the event channel", reason: "\(error)")
        }
    }

    static func makeFIFO(_ path: String) throws(SystemError) {
        _ = unlink(path)
        guard mkfifo(path, 0o600) == 0 else { throw SystemError("mkfifo \(path)", errno: errno) }
    }

    /// How a failed cloud-hypervisor call looks to the VM's state machine.
    public static func callError(_ error: CHError) -> VMStateMachine.CallError {
        switch error {
        case .api(let status, let chain, _): VMStateMachine.CallError(.rejected(status: status), chain: chain)
        case .vmmGone(_, let detail): VMStateMachine.CallError(.vmmGone, chain: [detail])
        case .invalidRequest(_, let reason): VMStateMachine.CallError(.rejected(status: 400), chain: ["not sent: \(reason)"])
        case .timeout, .transport, .responseTooLarge, .malformedResponse, .cancelled:
            VMStateMachine.CallError(.noAnswer, chain: [error.description])
        }
    }
}

/// The REST control and event stream of one cloud-hypervisor process.
final class CloudHypervisorControl: VMMControl {
    let events: AsyncStream<VMStateMachine.Event>
    private let client: CloudHypervisorClient
    private let context: VMMLaunchContext
    private let validator: SchemaCheck
    private let registration: ReadRegistration

    init(client: CloudHypervisorClient, context: VMMLaunchContext, validator: SchemaCheck,
         events fd: consuming FileDescriptor) throws(SystemError) {
        self.client = client
        self.context = context
        self.validator = validator
        let (stream, continuation) = AsyncStream.makeStream(of: VMStateMachine.Event.self)
        events = stream
        let parser = Mutex(CHEventParser())
        // Parsed on the reactor thread: no task per event, nothing buffered beyond one object.
        registration = try Reactor.shared().read(fd) { event in
            switch event {
            case .data(let bytes):
                let parsed = parser.withLock { parser in Result { () throws(CHEventStreamError) in try parser.feed(bytes) } }
                switch parsed {
                case .success(let events):
                    for event in events {
                        if let mapped = VMStateMachine.Event(source: event.source, event: event.event) { continuation.yield(mapped) }
                    }
                case .failure:
                    continuation.finish()
                }
            case .endOfFile, .failed:
                continuation.finish()
            }
            return .proceed
        }
    }

    func perform(_ call: VMStateMachine.Call) async throws(VMStateMachine.CallError) {
        do throws(CHError) {
            switch call {
            case .create: try await create()
            case .boot: try await client.boot()
            case .pause: try await client.pause()
            case .resume: try await client.resume()
            case .reboot: try await client.reboot()
            case .powerButton: try await client.powerButton()
            }
        } catch {
            throw CloudHypervisorBackend.callError(error)
        }
    }

    /// `vm.create` with the translated, schema-checked config, then one `vm.add-net` per host NIC
    /// with its queue fds (SCM_RIGHTS).
    private func create() async throws(CHError) {
        let plan: CloudHypervisorVMPlan
        do {
            plan = try VmConfigTranslation.plan(for: context.spec, preparedNICs: context.nics.map(\.device),
                                                defaultVsockSocket: context.runtime.vsockSocket)
        } catch {
            throw .invalidRequest(call: "vm.create", reason: error.description)
        }
        let body = try CloudHypervisorClient.encode(plan.vmConfig, for: .vmCreate)
        let violations = validator.violations(body, against: "VmConfig")
        guard violations.isEmpty else {
            throw .invalidRequest(call: "vm.create", reason: violations.map(\.description).joined(separator: "; "))
        }
        try await client.create(config: body)
        var byID: [String: HostNIC] = [:]
        for nic in context.nics { byID[nic.device.id] = nic }
        for attachment in plan.netAttachments {
            let body = try CloudHypervisorClient.encode(attachment.body, for: .vmAddNet)
            let violations = validator.violations(body, against: "NetConfig")
            guard violations.isEmpty else {
                throw .invalidRequest(call: "vm.add-net", reason: violations.map(\.description).joined(separator: "; "))
            }
            _ = try await client.addNet(config: body, descriptors: byID[attachment.nicID]?.queueDescriptors ?? [])
        }
    }

    func shutdown() async {
        _ = try? await client.shutdownVMM()
    }

    func delete() async throws(VMStateMachine.CallError) {
        do { try await client.delete() } catch { throw CloudHypervisorBackend.callError(error) }
    }

    func info() async throws(VMStateMachine.CallError) -> VMMInfo {
        do {
            let info = try await client.info()
            return VMMInfo(vmmState: info.state.rawValue, memoryBytes: info.memoryActualSize, raw: info.body)
        } catch {
            throw CloudHypervisorBackend.callError(error)
        }
    }

    func counters() async throws(VMStateMachine.CallError) -> [String: [String: Int64]] {
        do { return try await client.counters() } catch { throw CloudHypervisorBackend.callError(error) }
    }

    func resize(vcpus: Int?, memoryBytes: Int64?) async throws(VMStateMachine.CallError) {
        do { try await client.resize(CHResize(desiredVcpus: vcpus, desiredRam: memoryBytes)) } catch {
            throw CloudHypervisorBackend.callError(error)
        }
    }

    func addNIC(_ nic: NICSpec, host: HostNIC) async throws(VMStateMachine.CallError) -> VMMDevice {
        do {
            let device = try await client.addNet(VmConfigTranslation.hotplugNet(nic, host: host.device),
                                                 descriptors: host.queueDescriptors)
            return VMMDevice(id: device?.id ?? nic.id, pciAddress: device?.bdf)
        } catch {
            throw CloudHypervisorBackend.callError(error)
        }
    }

    func addDisk(_ disk: DiskSpec) async throws(VMStateMachine.CallError) -> VMMDevice {
        do {
            let device = try await client.addDisk(VmConfigTranslation.hotplugDisk(disk))
            return VMMDevice(id: device?.id ?? disk.id, pciAddress: device?.bdf)
        } catch {
            throw CloudHypervisorBackend.callError(error)
        }
    }

    func removeDevice(id: String) async throws(VMStateMachine.CallError) {
        do { try await client.removeDevice(id: id) } catch { throw CloudHypervisorBackend.callError(error) }
    }

    func close() {
        registration.cancel()
    }
}

/// Checks request bodies against the API document, each distinct body once: a VM sends the same
/// `vm.create` and `vm.add-net` bodies at every boot, so only its first boot pays for the check.
final class SchemaCheck: Sendable {
    private let validator: OpenAPISchemaValidator
    /// Bodies that passed, per schema; bounded (cleared when full).
    private let passed = Mutex<Set<[UInt8]>>([])
    private static let capacity = 4096

    init(_ validator: OpenAPISchemaValidator) {
        self.validator = validator
    }

    func violations(_ body: [UInt8], against schema: String) -> [SchemaViolation] {
        let key = Array(schema.utf8) + [0] + body
        if passed.withLock({ $0.contains(key) }) { return [] }
        let violations = validator.validate(Data(body), against: schema)
        if violations.isEmpty {
            passed.withLock { set in
                if set.count >= Self.capacity { set.removeAll() }
                set.insert(key)
            }
        }
        return violations
    }
}
