import Foundation
import Glibc
import LinuxSys
import NodeCore
import Synchronization
import Testing

/// Where the end-to-end tests find what they run: the real binaries from the build products, the
/// tiny guest, the VMMs.
enum E2E {
    static let hasKVM = access("/dev/kvm", R_OK | W_OK) == 0
    static let isRoot = getuid() == 0
    static let qemu = VMMProbe.find("qemu-system-x86_64", searchPath: "/usr/local/bin:/usr/bin:/bin")
    static let canRunQEMU = hasKVM && isRoot && qemu != nil
    static let canRunSimulator = isRoot

    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// A product next to this test binary (SwiftPM puts executables and the test bundle together).
    static func product(_ name: String) -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while directory.path != "/" && !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent(name).path) {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent(name).path
    }

    static let nodeBinary = product("qarax-node")
    static let simulatorBinary = product("ch-sim")

    /// `.cache/guest/tiny-pvh.elf`, built by `scripts/guest-artifacts` when missing.
    static let tinyGuest: String = {
        let path = repositoryRoot + "/.cache/guest/tiny-pvh.elf"
        if access(path, R_OK) != 0 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: repositoryRoot + "/scripts/guest-artifacts")
            process.environment = ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "QARAX_GUEST_DIR": repositoryRoot + "/.cache/guest"]
            process.standardOutput = FileHandle.nullDevice
            try? process.run()
            process.waitUntilExit()
        }
        return path
    }()

    static let marker = "QARAX-GUEST-READY"

    static func unique(_ prefix: String) -> String {
        "\(prefix)\(getpid() % 10000)\(UInt32.random(in: 0..<0xffff))"
    }
}

/// Waits for `body` at most `seconds`; the deadline is a failure naming `what`.
func withDeadline<T: Sendable>(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))  // allowed: deadline timer, not a wait
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw E2EError("\(what): not done within \(seconds) s")
        }
        return value
    }
}

struct E2EError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` on a new thread (it may block) and returns its result.
func onThread<T: Sendable>(_ name: String = "e2e-blocking", _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = name
        thread.start()
    }
}

/// What a finished command printed.
struct CommandResult: Sendable, CustomStringConvertible {
    let status: Int32
    let stdout: String
    let stderr: String
    var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// Runs a program to its end on a dedicated thread (outputs go through temporary files, so
/// neither can fill a pipe).
func runProgram(_ executable: String, _ arguments: [String]) async -> CommandResult {
    await onThread("e2e-cli") {
        let base = NSTemporaryDirectory() + "qarax-e2e-out-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
        defer {
            unlink(base + ".out")
            unlink(base + ".err")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        guard let out = FileHandle(forWritingAtPath: base + ".out"), let err = FileHandle(forWritingAtPath: base + ".err") else {
            return CommandResult(status: -1, stdout: "", stderr: "cannot open output files")
        }
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch { return CommandResult(status: -1, stdout: "", stderr: "\(error)") }
        process.waitUntilExit()
        try? out.close()
        try? err.close()
        let stdout = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        return CommandResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }
}

/// One real `qarax-node serve` process on a private socket, state and runtime directory, with its
/// own cgroup parent. Readiness is the daemon's ready line, read through a pipe.
final class ServeProcess: Sendable {
    enum Backend: String, Sendable, CustomStringConvertible {
        case qemu
        case cloudHypervisor = "cloud-hypervisor"
        var description: String { rawValue }
    }

    let backend: Backend
    let directory: String
    let socket: String
    let stateDirectory: String
    let runtimeRoot: String
    let imageRoot: String
    let diskRoot: String
    let cgroupParent: String
    let networkNamespace: String?
    private let process = Mutex<Process?>(nil)
    private let output = Lines()

    init(backend: Backend, networkNamespace: String? = nil) throws {
        self.backend = backend
        directory = "/tmp/" + E2E.unique("qx-e2e-")
        socket = directory + "/node.sock"
        stateDirectory = directory + "/state"
        runtimeRoot = directory + "/run"
        imageRoot = directory + "/images"
        diskRoot = directory + "/disks"
        cgroupParent = E2E.unique("qarax-e2e-")
        self.networkNamespace = networkNamespace
        try FileManager.default.createDirectory(atPath: imageRoot, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        try FileManager.default.createDirectory(atPath: diskRoot, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        chmod(directory, 0o755)
        // The VMM (uid 65534) reads the kernel: a world-readable copy under the image root.
        try FileManager.default.copyItem(atPath: E2E.tinyGuest, toPath: kernel)
        chmod(kernel, 0o644)
    }

    var kernel: String { imageRoot + "/tiny-pvh.elf" }

    var arguments: [String] {
        var arguments = ["serve", "--socket", socket, "--state-dir", stateDirectory, "--runtime-dir", runtimeRoot,
                         "--image-root", imageRoot, "--disk-root", diskRoot, "--cgroup-parent", cgroupParent, "--hypervisor", backend.rawValue]
        switch backend {
        case .qemu: arguments += ["--qemu-powerdown-grace", "0s"]
        case .cloudHypervisor: arguments += ["--cloud-hypervisor-binary", E2E.simulatorBinary]
        }
        if let networkNamespace { arguments += ["--network-namespace", networkNamespace] }
        return arguments
    }

    /// Starts the daemon and returns its ready line.
    @discardableResult
    func start() async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: E2E.nodeBinary)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        self.process.withLock { $0 = process }
        let reader = pipe.fileHandleForReading
        let output = self.output
        let ready: String? = try await withDeadline(20, "the ready line of qarax-node serve") {
            await onThread("e2e-serve-reader") { () -> String? in
                var pending = Data()
                var readyLine: String?
                while readyLine == nil {
                    let chunk = reader.availableData
                    if chunk.isEmpty { return nil }
                    pending.append(chunk)
                    while let newline = pending.firstIndex(of: 0x0A) {
                        let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                        pending.removeSubrange(pending.startIndex...newline)
                        output.append(line)
                        if line.hasPrefix("qarax-node ready:") { readyLine = line }
                    }
                }
                // Keep draining so the daemon never blocks on a full pipe.
                let drain = Thread {
                    while true {
                        let chunk = reader.availableData
                        if chunk.isEmpty { return }
                        output.append(String(decoding: chunk, as: UTF8.self))
                    }
                }
                drain.start()
                return readyLine
            }
        }
        guard let ready else { throw E2EError("qarax-node serve exited before it was ready: \(log)") }
        return ready
    }

    var log: String { output.joined }

    var pid: Int32? { process.withLock { $0?.processIdentifier } }

    /// Sends `signal` and waits for the daemon to exit; returns its exit status (or signal).
    @discardableResult
    func stop(signal: Int32 = SIGTERM) async throws -> Int32 {
        guard let process = self.process.withLock({ $0 }) else { return 0 }
        kill(process.processIdentifier, signal)
        return try await withDeadline(20, "exit of qarax-node serve") {
            await onThread("e2e-serve-wait") {
                process.waitUntilExit()
                return process.terminationStatus
            }
        }
    }

    /// The CLI against this daemon.
    func cli(_ arguments: String...) async -> CommandResult {
        await runProgram(E2E.nodeBinary, arguments + ["--socket", socket])
    }

    /// `vm info NAME -o json`, decoded.
    func info(_ name: String) async throws -> VMReport {
        let result = await cli("vm", "info", name, "-o", "json")
        guard result.status == 0 else { throw E2EError("vm info \(name): \(result)") }
        return try JSONDecoder().decode(VMReport.self, from: Data(result.stdout.utf8))
    }

    /// Waits until the console of `name` shows `text` `count` times.
    func awaitConsole(_ name: String, _ text: String = E2E.marker, count: Int = 1, seconds: Double = 20) async throws {
        let client = NodeClient(socketPath: socket)
        let found = await onThread("e2e-console") { () -> Result<Bool, NodeClientError> in
            var log = ""
            do throws(NodeClientError) {
                try client.followConsole(name: name, deadline: .now + .milliseconds(Int(seconds * 1000))) { chunk in
                    log += String(decoding: chunk, as: UTF8.self)
                    return log.components(separatedBy: text).count - 1 < count
                }
                return .success(true)
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let error) = found {
            throw E2EError("\(text) ×\(count) on the console of \(name): \(error)")
        }
    }

    /// Removes the directory and the (empty) cgroup parent.
    func cleanUp() {
        if let process = self.process.withLock({ $0 }), process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        for hierarchy in Host.cgroupHierarchies { rmdir(hierarchy + "/" + cgroupParent) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Lines a daemon printed, appended from its reader threads.
final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var joined: String { lines.withLock { $0.joined(separator: "\n") } }
}

/// What the host shows about processes, cgroups and files.
enum Host {
    /// Every cgroup hierarchy root (v1 controllers and the v2 mount).
    static var cgroupHierarchies: [String] {
        var roots: [String] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] {
            let path = "/sys/fs/cgroup/" + entry
            var info = stat()
            if lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR { roots.append(path) }
        }
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") { roots.append("/sys/fs/cgroup") }
        return roots
    }

    /// Per-VM cgroups left under `parent`.
    static func cgroups(under parent: String) -> [String] {
        cgroupHierarchies.flatMap { root -> [String] in
            let directory = root + "/" + parent
            return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .filter { entry in
                    var info = stat()
                    return lstat(directory + "/" + entry, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
                }
                .map { directory + "/" + $0 }
        }
    }

    /// Everything under `directory`, recursively.
    static func files(under directory: String) -> [String] {
        (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String]) ?? []
    }

    /// `key:\tvalue` lines of `/proc/PID/status`.
    static func status(of pid: Int32) -> [String: String] {
        var fields: [String: String] = [:]
        let text = (try? readProcFile("/proc/\(pid)/status")) ?? ""
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    /// Whether the process still runs: the same process (start time) and not a zombie. A VMM
    /// re-adopted after a node restart is no child of the node; its last parent (init or a
    /// subreaper) reaps it, possibly after the node saw it exit through its pidfd.
    static func isRunning(_ identity: ProcessIdentity) -> Bool {
        guard identity.isAlive(), let stat = try? readProcFile("/proc/\(identity.pid)/stat"),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].hasPrefix(" Z")
    }

    static func cgroupLines(of pid: Int32) -> [String] {
        ((try? readProcFile("/proc/\(pid)/cgroup")) ?? "").split(separator: "\n").map(String.init)
    }

    /// `/proc/PID/fd` link targets.
    static func descriptorTargets(of pid: Int32) -> [String] {
        let directory = "/proc/\(pid)/fd"
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + $0)
        }
    }

    /// Processes (other than the test runner) whose command line mentions `text`.
    static func processes(mentioning text: String) -> [Int32] {
        let own = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> Int32? in
            guard let pid = Int32(entry), pid != own,
                  let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let commandLine = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return commandLine.contains(text) ? pid : nil
        }
    }
}
