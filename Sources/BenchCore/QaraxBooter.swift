import Foundation
import LinuxSys
public import NodeCore
public import VMModel
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Boots VMs through the node's own path (``NodeRuntime`` → ``VMInstance`` → backend → jailed
/// launcher → supervisor) and times each boot through the node's ``BootObserver``.
public final class QaraxBooter: Sendable {
    final class Boot: Sendable {
        let timeline: BootTimeline
        let scanner = Mutex(MarkerScanner("QARAX-GUEST-READY"))
        let ready = Latch()
        let exited = Latch()

        init(timeline: BootTimeline) { self.timeline = timeline }
    }

    /// The boots in flight by VM id, shared with the observer's closures.
    final class Registry: Sendable {
        let boots = Mutex<[String: Boot]>([:])
        func boot(_ id: String) -> Boot? { boots.withLock { $0[id] } }
    }

    private let registry: Registry
    public let runtime: NodeRuntime
    public let configuration: NodeConfiguration
    /// Stop the VM after the ready marker (the guest halts instead of powering off).
    public let stopAfterMarker: Bool
    public let deadline: Duration

    /// Opens a node runtime on `configuration` (its ``NodeConfiguration/bootObserver`` is replaced).
    public static func open(configuration given: NodeConfiguration, backend: any VMMBackend, stopAfterMarker: Bool,
                            deadline: Duration = .seconds(30)) async throws -> QaraxBooter {
        let registry = Registry()
        var configuration = given
        configuration.bootObserver = BootObserver(
            milestone: { id, milestone in
                let now = ContinuousClock.now
                guard let boot = registry.boot(id) else { return }
                switch milestone {
                case .specValidated: boot.timeline.mark(.specValidated, at: now)
                case .hostPrepared: boot.timeline.mark(.hostPrepared, at: now)
                case .launchPlanned: boot.timeline.mark(.launchPlanned, at: now)
                case .vmmSpawned: boot.timeline.mark(.vmmSpawned, at: now)
                case .supervised: boot.timeline.mark(.supervised, at: now)
                case .apiReady: boot.timeline.mark(.apiReady, at: now)
                case .created: boot.timeline.mark(.created, at: now)
                case .bootReturned: boot.timeline.mark(.bootReturned, at: now)
                case .guestBooted: boot.timeline.mark(.guestBooted, at: now)
                case .vmmExited:
                    boot.timeline.mark(.shutdownComplete, at: now)
                    boot.exited.fire()
                }
            },
            serial: { id, bytes in
                let now = ContinuousClock.now
                guard let boot = registry.boot(id) else { return }
                if boot.scanner.withLock({ $0.feed(bytes) }) {
                    boot.timeline.mark(.readyMarker, at: now)
                    boot.ready.fire()
                }
            })
        let (runtime, _) = try await NodeRuntime.open(configuration: configuration, backend: backend)
        return QaraxBooter(runtime: runtime, configuration: configuration, registry: registry,
                           stopAfterMarker: stopAfterMarker, deadline: deadline)
    }

    private init(runtime: NodeRuntime, configuration: NodeConfiguration, registry: Registry,
                 stopAfterMarker: Bool, deadline: Duration) {
        self.runtime = runtime
        self.configuration = configuration
        self.registry = registry
        self.stopAfterMarker = stopAfterMarker
        self.deadline = deadline
    }

    /// One boot of `spec` (its name must be unique): create, start, the guest's ready marker, the
    /// VMM's exit (after a stop when ``stopAfterMarker``), delete.
    public func boot(_ spec: VMSpec) async throws -> BootSample {
        let id = spec.id ?? spec.name
        let boot = Boot(timeline: BootTimeline())
        registry.boots.withLock { $0[id] = boot }
        defer { _ = registry.boots.withLock { $0.removeValue(forKey: id) } }
        var failure: (any Error)?
        do {
            _ = try await runtime.create(spec)
            do {
                try await runtime.start(spec.name)
            } catch {
                // A guest that powers off at once may end the start with the VM shut down; its
                // serial output may still be on its way through the reactor.
                if !(await boot.ready.wait(timeout: .seconds(2))) { failure = error }
            }
            if failure == nil {
                if await boot.ready.wait(timeout: deadline) {
                    if stopAfterMarker { try? await runtime.stop(spec.name) }
                    if !(await boot.exited.wait(timeout: deadline)) {
                        failure = BenchError("vm \(spec.name): the VMM did not exit within \(deadline)")
                    }
                } else {
                    failure = BenchError("vm \(spec.name): no ready marker on the serial port within \(deadline)")
                }
            }
        } catch {
            failure = error
        }
        if vmmIsCloudHypervisor, let spawned = boot.timeline.offset(of: .vmmSpawned),
           let runtimeDirectory = try? VMRuntimeDirectory(vmID: id, root: configuration.runtimeRoot),
           let log = try? String(contentsOfFile: runtimeDirectory.vmmLog, encoding: .utf8),
           let seconds = DebugPortLog.firstWriteSeconds(in: log) {
            boot.timeline.mark(.debugPort, offsetMilliseconds: spawned + seconds * 1000)
        }
        try? await runtime.delete(spec.name)
        if let failure { throw failure }
        return boot.timeline.sample
    }

    private var vmmIsCloudHypervisor: Bool { runtime.backend.kind == .cloudHypervisor }

    /// Forgets the node's state without touching VMMs (there are none left after the boots).
    public func close() async { await runtime.detach() }
}

/// A benchmark failure with its reason.
public struct BenchError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
