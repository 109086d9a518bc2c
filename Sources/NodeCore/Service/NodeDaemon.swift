import Foundation
public import LinuxSys
import Wire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How `qarax-node serve` runs.
public struct NodeDaemonOptions: Sendable {
    public var socketPath: String = "/run/qarax/node.sock"
    public var stateDirectory: String = "/var/lib/qarax/node"
    public var runtimeRoot: String = VMRuntimeDirectory.defaultRoot
    /// `nil`: cloud-hypervisor when its binary is found, else QEMU.
    public var hypervisor: VMMKind?
    public var cloudHypervisorBinary: String?
    public var qemuBinary: String?
    public var imageRoots: [String] = ["/var/lib/qarax/images"]
    public var diskRoots: [String] = ["/var/lib/qarax/disks"]
    public var vmmUser: UserIdentity = .nobody
    public var cgroupParent: String = "qarax"
    public var hugepagesAutoReserve = false
    /// Where VM NICs are made (`nil`: the daemon's own namespace).
    public var networkNamespace: NetworkNamespace?
    /// How long QEMU's graceful stop waits for the guest to act on the power button.
    public var qemuPowerdownGrace: Duration = .seconds(3)
    /// PATH used to find VMM binaries not given explicitly.
    public var searchPath: String = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    /// The control daemon to attach to (`--control`); `nil`: local socket only.
    public var control: NodeAgentConfiguration?

    public init() {}
}

/// Why the daemon could not start.
public struct NodeDaemonError: Error, Hashable, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// The node daemon: opens the node's state (re-adopting VMMs a previous instance left running),
/// serves the local socket, and on SIGTERM/SIGINT stops serving and detaches — VMs keep running.
public enum NodeDaemon {
    /// The backend `options` ask for, or the default one (cloud-hypervisor when found, else QEMU).
    public static func backend(for options: NodeDaemonOptions) throws(NodeDaemonError) -> any VMMBackend {
        func locate(_ kind: VMMKind, _ explicit: String?) -> String? {
            if let explicit { return explicit.hasPrefix("/") ? explicit : VMMProbe.find(explicit, searchPath: options.searchPath) }
            return VMMProbe.find(kind.binaryName, searchPath: options.searchPath)
        }
        let kind: VMMKind
        if let chosen = options.hypervisor {
            kind = chosen
        } else if locate(.cloudHypervisor, options.cloudHypervisorBinary) != nil {
            kind = .cloudHypervisor
        } else if locate(.qemu, options.qemuBinary) != nil {
            kind = .qemu
        } else {
            throw NodeDaemonError("no VMM found: neither cloud-hypervisor nor qemu-system-x86_64 is on PATH (give --cloud-hypervisor-binary or --qemu-binary; `qarax-node doctor` checks the host)")
        }
        let explicit = kind == .qemu ? options.qemuBinary : options.cloudHypervisorBinary
        guard let binary = locate(kind, explicit), access(binary, X_OK) == 0 else {
            throw NodeDaemonError("\(kind.flag): \(explicit ?? kind.binaryName) is not an executable file")
        }
        do throws(VMMBackendError) {
            switch kind {
            case .cloudHypervisor: return try CloudHypervisorBackend(binary: binary)
            case .qemu: return try QEMUBackend(binary: binary, powerdownGrace: options.qemuPowerdownGrace)
            }
        } catch {
            throw NodeDaemonError(error.description)
        }
    }

    /// The node configuration `options` describe.
    public static func configuration(for options: NodeDaemonOptions) -> NodeConfiguration {
        NodeConfiguration(
            runtimeRoot: options.runtimeRoot, stateDirectory: options.stateDirectory,
            pathPolicy: PathPolicy(imageRoots: options.imageRoots, diskRoots: options.diskRoots),
            vmmUser: options.vmmUser, cgroupParent: options.cgroupParent,
            networkNamespace: options.networkNamespace ?? .current,
            hugepages: HugepageSettings(autoReserve: options.hugepagesAutoReserve))
    }

    /// Runs until SIGTERM or SIGINT. `ready` is called once the socket accepts requests, with a
    /// one-line summary (the ready line operators and tests wait for), then with one line per
    /// request that changed something or failed.
    public static func run(_ options: NodeDaemonOptions, ready: @escaping @Sendable (String) -> Void) async throws(NodeDaemonError) {
        let backend = try backend(for: options)
        let configuration = configuration(for: options)
        signal(SIGPIPE, SIG_IGN)
        let signals = SignalWaiter(signals: [SIGTERM, SIGINT])
        let (runtime, recovery): (NodeRuntime, NodeRecovery)
        do {
            (runtime, recovery) = try await NodeRuntime.open(configuration: configuration, backend: backend)
        } catch {
            throw NodeDaemonError("open the node state: \(error)")
        }
        let backends = NodeInventoryProbe.Backends(active: backend.kind, activeBinary: backend.binary,
                                                   searchPath: options.searchPath)
        let inventory: @Sendable () async -> WireNodeInventory = { await NodeInventoryProbe.probe(backends: backends) }
        let server: NodeLocalServer
        do {
            let local = WireLocalIdentity(role: .node, name: ProcessInfo.processInfo.hostName,
                                          softwareVersion: NodeVersion.current)
            server = try await NodeLocalServer(
                path: options.socketPath,
                handler: NodeWireHandler(service: NodeService(runtime: runtime), inventory: inventory),
                local: local, log: ready)
        } catch {
            await runtime.detach()
            throw NodeDaemonError("listen on \(options.socketPath): \(error)")
        }
        var line = "qarax-node ready: socket=\(options.socketPath) backend=\(backend.kind.rawValue) binary=\(backend.binary) pid=\(getpid())"
        line += " adopted=\(recovery.adopted.count) orphaned=\(recovery.orphaned.count) killed=\(recovery.killed.count) reaped_links=\(recovery.reapedLinks.count)"
        if let control = options.control { line += " control=\(control.endpoint) name=\(control.name)" }
        ready(line)
        for problem in recovery.problems { ready("qarax-node recovery: \(problem)") }
        let agent = options.control.map { control in
            NodeAgent(service: NodeService(runtime: runtime), configuration: control, inventory: inventory,
                             log: { ready("qarax-node agent: \($0)") })
        }
        let agentTask = agent.map { agent in Task { await agent.run() } }
        let received = await signals.next()
        ready("qarax-node: signal \(received): stopping (VMs keep running)")
        agentTask?.cancel()
        await agentTask?.value
        await server.stop()
        await runtime.detach()
    }
}

/// Turns SIGTERM/SIGINT into an awaitable value (the signals are ignored by default handling;
/// Dispatch delivers them on its own queue).
final class SignalWaiter: Sendable {
    private let stream: AsyncStream<Int32>
    /// Kept alive for as long as the waiter; never touched again.
    private let sources: Mutex<[any DispatchSourceSignal]>

    init(signals: [Int32]) {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        self.stream = stream
        let queue = DispatchQueue(label: "qarax-node-signals")
        sources = Mutex(signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        })
    }

    func next() async -> Int32 {
        for await number in stream { return number }
        return SIGTERM
    }
}
