#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinuxSys
import NodeCore
import Synchronization
import Testing
import VMModel

/// Boots the tiny PVH guest under real QEMU + KVM with the argv ``QEMUCommandLine`` builds and
/// drives it over QMP.
@Suite(.serialized, .enabled(if: QEMUBootHost.available, "needs /dev/kvm and qemu-system-x86_64"))
struct QEMUBootTests {
    static let marker = "QARAX-GUEST-READY"

    @Test func lifecycleOverQMP() async throws {
        let vm = try QEMUTestVM.launch(spec: QEMUTestVM.tinySpec(name: "qmp-lifecycle"))
        defer { vm.destroy() }
        try await vm.console.waitFor(Self.marker, occurrences: 1)

        let qmp = try await QMPClient.connect(socketPath: vm.qmpPath)
        defer { qmp.close() }
        let events = QEMUEventInbox(qmp.events)
        defer { events.stop() }
        #expect(qmp.greeting.version.major >= 7)
        #expect(try await qmp.queryVersion() == qmp.greeting.version)
        #expect(QMPVersion(versionOutput: try QEMUBootHost.versionOutput()) == qmp.greeting.version,
                "`--version` and QMP agree")

        var status = try await qmp.queryStatus()
        #expect(status.running && status.state == .running)

        try await qmp.stop()
        #expect(try await nextEvent(events)?.kind == .stop)
        status = try await qmp.queryStatus()
        #expect(!status.running && status.state == .paused)

        try await qmp.cont()
        #expect(try await nextEvent(events)?.kind == .resume)
        #expect(try await qmp.queryStatus().state == .running)

        try await qmp.systemReset()
        #expect(try await nextEvent(events)?.kind == .reset(guest: false, reason: .hostQMPSystemReset))
        try await vm.console.waitFor(Self.marker, occurrences: 2)
        #expect(try await qmp.queryStatus().state == .running)

        // The tiny guest has no ACPI driver: the button is pressed, nothing shuts down.
        try await qmp.systemPowerdown()
        #expect(try await nextEvent(events)?.kind == .powerdown)
        #expect(try await qmp.queryStatus().state == .running)

        try await qmp.quit()
        #expect(try await nextEvent(events)?.kind == .shutdown(guest: false, reason: .hostQMPQuit))
        #expect(try await nextEvent(events) == nil, "the event stream ends with the connection")
        let exit = try await vm.waitForExit()
        #expect(exit == .exited(0))
        await #expect(throws: QMPError.disconnected) { try await qmp.queryStatus() }
    }

    @Test func guestPowerOffEndsQEMU() async throws {
        var spec = QEMUTestVM.tinySpec(name: "qmp-poweroff")
        spec.payload.cmdline = "console=ttyS0 qarax.poweroff=1"
        let vm = try QEMUTestVM.launch(spec: spec, debugExit: true)
        defer { vm.destroy() }
        try await vm.console.waitFor(Self.marker, occurrences: 1)
        // isa-debug-exit: the guest writes 0, QEMU exits with (0 << 1) | 1.
        #expect(try await vm.waitForExit() == .exited(1))
    }

    @Test func refusedCommandKeepsQMPErrorClassAndDescription() async throws {
        let vm = try QEMUTestVM.launch(spec: QEMUTestVM.tinySpec(name: "qmp-errors"))
        defer { vm.destroy() }
        let qmp = try await QMPClient.connect(socketPath: vm.qmpPath)
        defer { qmp.close() }

        do {
            try await qmp.execute("no-such-command")
            Issue.record("an unknown command succeeded")
        } catch {
            guard case .command(let command, let errorClass, let description) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(command == "no-such-command")
            #expect(errorClass == "CommandNotFound")
            #expect(description.contains("no-such-command"))
        }
        // microvm has no PCI bus to hot-plug into.
        await #expect {
            try await qmp.deviceAdd(driver: "virtio-rng-pci", id: "rng-hot")
        } throws: { error in
            guard case .command("device_add", let errorClass, let description) = error as? QMPError else { return false }
            return errorClass == "GenericError" && !description.isEmpty
        }
        await #expect(throws: QMPError.self) { try await qmp.deviceDel(id: "nothing-here") }
        // Concurrent commands each get their own reply.
        async let first = qmp.queryStatus()
        async let second = qmp.queryVersion()
        async let third = qmp.queryStatus()
        let (a, b, c) = try await (first, second, third)
        #expect(a.state == .running && c.state == .running && b == qmp.greeting.version)
        try await qmp.quit()
        #expect(try await vm.waitForExit() == .exited(0))
    }

    @Test func q35HotplugsIntoASpareRootPort() async throws {
        var spec = QEMUTestVM.tinySpec(name: "qmp-q35")
        spec.cpus = CPUSpec(bootVCPUs: 1, maxVCPUs: 2)
        spec.memory = MemorySpec(size: .mebibytes(128), hotplugSize: .mebibytes(128))
        let vm = try QEMUTestVM.launch(spec: spec, pciHotplug: true)
        defer { vm.destroy() }
        #expect(vm.commandLine.machine == .q35)
        try await vm.console.waitFor(Self.marker, occurrences: 1)
        let qmp = try await QMPClient.connect(socketPath: vm.qmpPath)
        defer { qmp.close() }
        let cpus = try await qmp.execute("query-hotpluggable-cpus")
        guard case .array(let slots) = cpus else { throw QMPError.malformed("query-hotpluggable-cpus: \(cpus)") }
        #expect(slots.count == 2)
        #expect(slots.filter { $0["qom-path"] == nil }.count == 1, "one vCPU slot left for hotplug")
        let memory = try await qmp.execute("query-memory-size-summary")
        #expect(memory["base-memory"] == .int(128 << 20))

        try await qmp.deviceAdd(driver: "virtio-rng-pci", id: "rng-hot", properties: ["bus": .string("hp0")])
        let tree = try await qmp.execute("qom-list", arguments: ["path": .string("/machine/peripheral")])
        #expect(tree.description.contains("\"rng-hot\""))
        await #expect(throws: QMPError.self) {
            try await qmp.deviceAdd(driver: "virtio-rng-pci", id: "rng-hot", properties: ["bus": .string("hp1")])
        }
        try await qmp.quit()
        #expect(try await vm.waitForExit() == .exited(0))
    }

    @Test func disksConsoleAndSharedMemoryAsQEMUSeesThem() async throws {
        let images = FileManager.default.temporaryDirectory.path + "/qarax-qemu-images-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: false)
        defer { _ = try? FileManager.default.removeItem(atPath: images) }
        for name in ["root.raw", "data.raw"] {
            #expect(FileManager.default.createFile(atPath: "\(images)/\(name)", contents: Data(count: 1 << 20)))
        }
        var spec = QEMUTestVM.tinySpec(name: "qmp-devices")
        spec.cpus = CPUSpec(bootVCPUs: 2)
        spec.memory = MemorySpec(size: .mebibytes(128), shared: true, prefault: true)
        spec.console = ConsoleSpec(mode: .tty)
        spec.rateLimitGroups = [RateLimitGroupSpec(id: "slow", rateLimiter: RateLimiterSpec(
            bandwidth: TokenBucketSpec(size: 1 << 20, refillTime: 1000)))]
        spec.disks = [
            DiskSpec(id: "root", path: "\(images)/root.raw", direct: true, numQueues: 2, rateLimitGroup: "slow", serial: "QX-ROOT"),
            DiskSpec(id: "data", path: "\(images)/data.raw", readonly: true,
                     rateLimiter: RateLimiterSpec(ops: TokenBucketSpec(size: 50, refillTime: 100))),
        ]
        let vm = try QEMUTestVM.launch(spec: spec)
        defer { vm.destroy() }
        try await vm.console.waitFor(Self.marker, occurrences: 1)
        let qmp = try await QMPClient.connect(socketPath: vm.qmpPath)
        defer { qmp.close() }

        let nodes = try await qmp.execute("query-named-block-nodes")
        guard case .array(let list) = nodes else { throw QMPError.malformed("query-named-block-nodes: \(nodes)") }
        var byName: [String: QMPValue] = [:]
        for node in list { if let name = node["node-name"]?.stringValue { byName[name] = node } }
        #expect(byName["fmt-data"]?["ro"] == .bool(true))
        #expect(byName["fmt-root"]?["ro"] == .bool(false))
        #expect(byName["thr-root"]?["drv"] == .string("throttle"))
        #expect(byName["thr-data"]?["drv"] == .string("throttle"))
        #expect(byName["file-root"]?["cache"]?["direct"] == .bool(true))
        let bps = try await qmp.execute("qom-get", arguments: ["path": .string("/objects/tg-slow"), "property": .string("x-bps-total")])
        #expect(bps == .int(1 << 20))
        let iops = try await qmp.execute("qom-get", arguments: ["path": .string("/objects/tg-disk-data"), "property": .string("x-iops-total")])
        #expect(iops == .int(500))
        let share = try await qmp.execute("qom-get", arguments: ["path": .string("/objects/mem0"), "property": .string("share")])
        #expect(share == .bool(true))
        let serial = try await qmp.execute("qom-get", arguments: ["path": .string("/machine/peripheral/root"), "property": .string("serial")])
        #expect(serial == .string("QX-ROOT"))
        let chardevs = try await qmp.execute("query-chardev")
        #expect(chardevs.description.contains("\"console0\""))
        try await qmp.quit()
        #expect(try await vm.waitForExit() == .exited(0))
    }

    /// Reserves 2 MiB pages for the test (relative to what is reserved already, so concurrent users
    /// of the pool keep theirs) and gives them back in `defer`.
    @Test(.hugepagePool, .enabled(if: getuid() == 0, "changes vm.nr_hugepages, which needs root"))
    func hugepageBackedGuestBoots() async throws {
        let pages = 32
        let knob = "/proc/sys/vm/nr_hugepages"
        func reserved() throws -> Int {
            Int(try String(contentsOfFile: knob, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        try String(try reserved() + pages).write(toFile: knob, atomically: false, encoding: .utf8)
        defer { _ = try? String(max(0, (try? reserved()) ?? pages) - pages).write(toFile: knob, atomically: false, encoding: .utf8) }

        var spec = QEMUTestVM.tinySpec(name: "qmp-hugepages")
        spec.memory = MemorySpec(size: .mebibytes(2 * pages), hugepages: true, prefault: true)
        let vm = try QEMUTestVM.launch(spec: spec)
        defer { vm.destroy() }
        try await vm.console.waitFor(Self.marker, occurrences: 1)
        // Guest RAM is the backend's memfd, mapped with 2 MiB kernel pages.
        let smaps = try QEMUBootHost.readWhole("/proc/\(vm.pid)/smaps")
        let mapping = smaps.components(separatedBy: "\n").drop { !$0.contains("memfd:memory-backend-memfd") }.prefix(30)
        #expect(mapping.first?.contains("memfd:memory-backend-memfd") == true)
        #expect(mapping.contains { $0.hasPrefix("Size:") && $0.hasSuffix(" \(2 * pages * 1024) kB") })
        #expect(mapping.contains { $0.hasPrefix("KernelPageSize:") && $0.hasSuffix(" 2048 kB") })
        let qmp = try await QMPClient.connect(socketPath: vm.qmpPath)
        defer { qmp.close() }
        try await qmp.quit()
        #expect(try await vm.waitForExit() == .exited(0))
    }

    private func nextEvent(_ events: QEMUEventInbox) async throws -> QMPEvent? {
        try await events.next()
    }
}

// MARK: - Harness

enum QEMUBootHost {
    static let qemuBinary = (["/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64"] as [String])
        .first { access($0, X_OK) == 0 }
    static let available = access("/dev/kvm", R_OK | W_OK) == 0 && qemuBinary != nil

    /// Reads a file to its end with plain `read` (procfs files report size 0).
    static func readWhole(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open \(path)", errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count < 0 { throw SystemError("read \(path)", errno: errno) }
            if count == 0 { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func versionOutput() throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: qemuBinary ?? "/usr/bin/qemu-system-x86_64")
        process.arguments = ["--version"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Consumes an event stream in the background; ``next()`` hands the events out in order, with a
/// deadline, and `nil` once the stream has finished.
final class QEMUEventInbox: Sendable {
    private struct State {
        var items: [QMPEvent] = []
        var finished = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private final class Shared: Sendable {
        let state = Mutex(State())
    }
    private let shared = Shared()
    private let consumer: Task<Void, Never>

    init(_ stream: AsyncStream<QMPEvent>) {
        let shared = self.shared
        consumer = Task {
            for await event in stream {
                let waiter = shared.state.withLock { state in
                    state.items.append(event)
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume()
            }
            let waiter = shared.state.withLock { state in
                state.finished = true
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }

    func stop() { consumer.cancel() }

    func next(seconds: Double = 10) async throws -> QMPEvent? {
        let shared = self.shared
        return try await withDeadline(.seconds(seconds), "QMP event") {
            while true {
                let taken: QMPEvent?? = shared.state.withLock { state in
                    if !state.items.isEmpty { return .some(state.items.removeFirst()) }
                    return state.finished ? .some(nil) : nil
                }
                if let taken { return taken }
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = shared.state.withLock { state in
                        if !state.items.isEmpty || state.finished { return true }
                        state.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            }
        }
    }
}

/// How a process ended.
enum QEMUProcessExit: Equatable, Sendable {
    case exited(Int32)
    case signalled(Int32)
}

/// Reads a pipe on its own thread and lets tests await text in it.
final class QEMUConsoleCapture: @unchecked Sendable {
    // `@unchecked Sendable`: the fd is read only by the reader thread; `state` is behind a mutex.
    private struct Waiter {
        let marker: String
        let occurrences: Int
        let continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var text = ""
        var ended = false
        var waiters: [UUID: Waiter] = [:]
    }
    private let state = Mutex(State())

    init(readingFrom fd: Int32) {
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(fd, &buffer, buffer.count)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                self.append(String(decoding: buffer[0..<count], as: UTF8.self))
            }
            close(fd)
            self.append(nil)
        }
        thread.name = "console-capture"
        thread.start()
    }

    var text: String { state.withLock { $0.text } }

    private static func count(_ marker: String, in text: String) -> Int {
        text.components(separatedBy: marker).count - 1
    }

    private func append(_ chunk: String?) {
        let ready: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            if let chunk { state.text += chunk } else { state.ended = true }
            var ready: [CheckedContinuation<Void, any Error>] = []
            for (key, waiter) in state.waiters where Self.count(waiter.marker, in: state.text) >= waiter.occurrences {
                ready.append(waiter.continuation)
                state.waiters[key] = nil
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Waits until `marker` has appeared `occurrences` times (deadline: `seconds`).
    func waitFor(_ marker: String, occurrences: Int, seconds: Double = 20) async throws {
        let key = UUID()
        do {
            try await withDeadline(.seconds(seconds), "\"\(marker)\" ×\(occurrences) on the console") {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                        let done = self.state.withLock { state in
                            if Self.count(marker, in: state.text) >= occurrences { return true }
                            state.waiters[key] = Waiter(marker: marker, occurrences: occurrences, continuation: continuation)
                            return false
                        }
                        if done { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = self.state.withLock { $0.waiters.removeValue(forKey: key) }
                    waiter?.continuation.resume(throwing: CancellationError())
                }
            }
        } catch let error as DeadlineExceeded {
            Issue.record("console so far: \(text.debugDescription)")
            throw error
        }
    }
}

/// One QEMU process launched with ``QEMUCommandLine``: fd 3 is the QMP listener, fd 4 the console
/// pipe; its directory (QMP socket, stderr log) is removed by ``destroy()``.
final class QEMUTestVM: Sendable {
    let pid: pid_t
    let directory: String
    let qmpPath: String
    let console: QEMUConsoleCapture
    let commandLine: QEMUCommandLine
    private final class Reaped: Sendable {
        let exit = Mutex<QEMUProcessExit?>(nil)
    }
    private let reaped = Reaped()
    private let exitStatus: Task<QEMUProcessExit, Never>

    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `.cache/guest/tiny-pvh.elf`, built by `scripts/guest-artifacts` when missing.
    static let tinyGuest: String = {
        let path = repositoryRoot + "/.cache/guest/tiny-pvh.elf"
        if access(path, R_OK) != 0 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: repositoryRoot + "/scripts/guest-artifacts")
            process.environment = ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "QARAX_GUEST_DIR": repositoryRoot + "/.cache/guest"]
            try? process.run()
            process.waitUntilExit()
        }
        return path
    }()

    static func tinySpec(name: String) -> VMSpec {
        VMSpec(name: name, cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(64)),
               payload: PayloadSpec(kernel: tinyGuest, cmdline: "console=ttyS0"),
               serial: ConsoleSpec(mode: .tty))
    }

    private init(pid: pid_t, directory: String, console: QEMUConsoleCapture, commandLine: QEMUCommandLine) {
        self.pid = pid
        self.directory = directory
        self.qmpPath = directory + "/qmp.sock"
        self.console = console
        self.commandLine = commandLine
        let reaped = self.reaped
        exitStatus = Task.detached {
            await withCheckedContinuation { continuation in
                let thread = Thread {
                    var status: Int32 = 0
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    let exit: QEMUProcessExit = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
                    reaped.exit.withLock { $0 = exit }
                    continuation.resume(returning: exit)
                }
                thread.name = "qemu-reaper"
                thread.start()
            }
        }
    }

    /// `hostNICs` gives the test's TAP descriptors per NIC id; QEMU gets them as fds 5, 6, …
    static func launch(spec: VMSpec, debugExit: Bool = false, pciHotplug: Bool = false,
                       hostNICs: [(id: String, fds: [Int32], mac: MACAddress)] = []) throws -> QEMUTestVM {
        guard let binary = QEMUBootHost.qemuBinary else { throw SystemError("find qemu-system-x86_64", errno: ENOENT) }
        let directory = FileManager.default.temporaryDirectory.path + "/qarax-qemu-\(spec.name)-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        var cleanup = [{ _ = try? FileManager.default.removeItem(atPath: directory) }]
        defer { for step in cleanup.reversed() { step() } }

        let listener = try listen(at: directory + "/qmp.sock")
        cleanup.append { _ = Glibc.close(listener) }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else { throw SystemError("pipe", errno: errno) }
        _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
        cleanup.append { _ = Glibc.close(pipeFDs[1]) }
        var readEndOwned = true
        cleanup.append { if readEndOwned { _ = Glibc.close(pipeFDs[0]) } }

        var mapping = [listener, pipeFDs[1]]
        var nics: [String: QEMUHostNIC] = [:]
        for nic in hostNICs {
            let numbers = nic.fds.indices.map { Int32(mapping.count + 3 + $0) }
            mapping += nic.fds
            nics[nic.id] = QEMUHostNIC(fds: numbers, mac: nic.mac)
        }
        let configuration = QEMULaunchConfiguration(qmpListenerFD: 3, console: .inheritedFD(4), nics: nics,
                                                    pciHotplug: pciHotplug, debugExit: debugExit)
        let commandLine = try QEMUCommandLine.build(for: spec, configuration: configuration)
        let pid = try spawn(argv: commandLine.argv(binary: binary), mapping: mapping,
                            stderrPath: directory + "/stderr.log")
        readEndOwned = false
        let console = QEMUConsoleCapture(readingFrom: pipeFDs[0])
        cleanup.removeFirst()  // the directory stays until destroy()
        return QEMUTestVM(pid: pid, directory: directory, console: console, commandLine: commandLine)
    }

    func waitForExit(seconds: Double = 20) async throws -> QEMUProcessExit {
        let status = exitStatus
        do {
            return try await withDeadline(.seconds(seconds), "exit of QEMU \(pid)") { await status.value }
        } catch {
            Issue.record("QEMU stderr: \((try? String(contentsOfFile: directory + "/stderr.log", encoding: .utf8)) ?? "")")
            throw error
        }
    }

    /// Kills QEMU if it still runs and removes its files.
    func destroy() {
        if reaped.exit.withLock({ $0 == nil }) { _ = kill(pid, SIGKILL) }
        _ = try? FileManager.default.removeItem(atPath: directory)
    }

    private static func listen(at path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 4) == 0 else {
            let error = SystemError("bind/listen \(path)", errno: errno)
            close(fd)
            throw error
        }
        return fd
    }

    /// posix_spawn with `mapping[i]` as fd 3+i, stdin /dev/null, stdout and stderr to `stderrPath`.
    private static func spawn(argv: [String], mapping: [Int32], stderrPath: String) throws -> pid_t {
        // Move the sources above the targets first so no dup2 overwrites a later source.
        var high: [Int32] = []
        defer { for fd in high { close(fd) } }
        for fd in mapping {
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 64)
            guard copy >= 0 else { throw SystemError("fcntl(F_DUPFD_CLOEXEC)", errno: errno) }
            high.append(copy)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        for (index, fd) in high.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, Int32(3 + index)) }
        let cArgs = argv.map { strdup($0) }
        let cEnv = (["PATH=/usr/bin:/bin"] as [String]).map { strdup($0) }
        defer { for pointer in cArgs + cEnv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, argv[0], &actions, nil, cArgs + [nil], cEnv + [nil])
        guard result == 0 else { throw SystemError("posix_spawn \(argv[0])", errno: result) }
        return pid
    }
}
