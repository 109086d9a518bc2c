import Foundation
import LinuxSys
import NetPlumbing
import NodeCore
import Synchronization
import Testing
import VMModel
#if canImport(Glibc)
import Glibc
#endif

let nodeTestsCanRun = getuid() == 0
let nodeTestsReason: Comment = "needs root: network namespaces, TAPs, cgroups, jailed VMM processes"

/// One node test's world: a fresh network namespace, its own runtime/state/image directories, a
/// unique VM-id prefix (also the cgroup names), `ch-sim` as the VMM, and the pids of every VMM it
/// launched. ``run(_:body:)`` checks afterwards, pass or fail, that nothing of its scope is left.
final class NodeFixture: Sendable {
    let prefix: String
    let directory: String
    let namespace: NetworkNamespace
    let namespaceName: String
    let kernel: String
    let configuration: NodeConfiguration
    let backend: CloudHypervisorBackend
    private let launched = Mutex<[Int32]>([])

    struct Options: Sendable {
        var faults: String?
        var callTimeout: Duration = .seconds(5)
        var hugepages = HugepageSettings(autoReserve: false)
    }

    /// The simulator binary: `$QARAX_CH_SIM`, else `ch-sim` next to the test binary.
    static var simulator: String {
        if let path = ProcessInfo.processInfo.environment["QARAX_CH_SIM"] { return path }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while dir.path != "/" && !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("ch-sim").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("ch-sim").path
    }

    /// The tiny guest from `scripts/guest-artifacts`, or a stand-in holding its ready marker (the
    /// simulator only looks for the marker).
    static func guestKernel(into directory: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let built = root.appendingPathComponent(".cache/guest/tiny-pvh.elf").path
        let path = directory + "/tiny-pvh.elf"
        let bytes = FileManager.default.contents(atPath: built) ?? Data("\u{7f}ELF stand-in QARAX-GUEST-READY".utf8)
        try bytes.write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        return path
    }

    private init(options: Options) async throws {
        let hex = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        prefix = "nt" + String(repeating: "0", count: 8 - hex.count) + hex
        directory = "/tmp/qx-node-\(prefix)"
        try FileManager.default.createDirectory(atPath: directory + "/images", withIntermediateDirectories: true)
        chmod(directory, 0o755)
        chmod(directory + "/images", 0o755)
        namespaceName = prefix
        namespace = try await NetworkNamespace.create(named: prefix)
        kernel = try Self.guestKernel(into: directory + "/images")
        var environment: [String: String] = [:]
        if let faults = options.faults { environment["QARAX_CH_SIM_FAULTS"] = faults }
        configuration = NodeConfiguration(
            runtimeRoot: directory + "/run", stateDirectory: directory + "/state",
            pathPolicy: PathPolicy(imageRoots: [directory + "/images"], diskRoots: [directory + "/images"]),
            networkNamespace: namespace, hugepages: options.hugepages, vmmEnvironment: environment,
            callTimeout: options.callTimeout, gracefulTimeout: .seconds(2), terminateTimeout: .seconds(2),
            killTimeout: .seconds(2))
        backend = try CloudHypervisorBackend(binary: Self.simulator, callTimeout: options.callTimeout)
    }

    /// Runs `body` with a fresh fixture and node, then deletes every VM still known, checks the
    /// test's scope for leftovers, and removes the namespace and directories.
    static func run(_ options: Options = Options(), sourceLocation: SourceLocation = #_sourceLocation,
                    body: (NodeFixture, NodeRuntime) async throws -> Void) async throws {
        let fixture = try await NodeFixture(options: options)
        defer { fixture.destroy() }
        let check = LeakCheck(netns: fixture.namespaceName, runtimeRoot: fixture.configuration.runtimeRoot,
                              cgroupPrefix: fixture.prefix, processes: { fixture.launched.withLock { $0 } })
        try await check.expectNoLeaks(sourceLocation: sourceLocation) {
            let (node, _) = try await NodeRuntime.open(configuration: fixture.configuration, backend: fixture.backend)
            do {
                try await body(fixture, node)
            } catch {
                await fixture.deleteAll(node)
                throw error
            }
            await fixture.deleteAll(node)
        }
    }

    /// Deletes every VM the node knows (the cleanup of a test, pass or fail).
    func deleteAll(_ node: NodeRuntime) async {
        for vm in await node.list() {
            try? await node.delete(vm.id)
        }
    }

    /// Remembers a VMM pid for the leak check.
    func track(_ pid: Int32?) {
        guard let pid else { return }
        launched.withLock { $0.append(pid) }
    }

    private func destroy() {
        try? NetworkNamespace.delete(named: namespaceName)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A small VM: tiny guest, serial to the node's console log.
    func spec(_ name: String, cmdline: String = "console=ttyS0", nics: [NICSpec] = [],
              memory: MemorySpec = MemorySpec(size: .mebibytes(64))) -> VMSpec {
        VMSpec(name: prefix + "-" + name, cpus: CPUSpec(bootVCPUs: 1), memory: memory,
               payload: PayloadSpec(kernel: kernel, cmdline: cmdline), nics: nics,
               serial: ConsoleSpec(mode: .tty))
    }

}

/// Fails when `body` has not finished within `limit` (a deadline, not a pause).
func within<T: Sendable>(_ limit: Duration, _ what: String,
                         _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)  // allowed: deadline timer, not a wait
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw FixtureError("\(what): not done within \(limit)")
        }
        return value
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A line of `/proc/<pid>/status`, e.g. `CapEff`.
func procStatus(_ pid: Int32, _ key: String) -> String? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
        return line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces)
    }
    return nil
}

/// The targets of `/proc/<pid>/fd/*`.
func descriptorTargets(of pid: Int32) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
    return names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)") }
}
