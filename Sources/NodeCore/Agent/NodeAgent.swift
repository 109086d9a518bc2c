import Foundation
public import Wire

/// How the node agent reaches the control daemon.
public struct NodeAgentConfiguration: Sendable {
    public var endpoint: WireEndpoint
    public var security: WireSecurity
    /// The node's name; with TLS its certificate must carry it.
    public var name: String
    /// How often resources (and VM states) are reported; also the node's liveness signal.
    public var reportInterval: Duration
    public var backoff: WireBackoff
    public var connection: WireConnectionConfiguration

    public init(endpoint: WireEndpoint, security: WireSecurity, name: String, reportInterval: Duration = .seconds(5),
                backoff: WireBackoff = .init(), connection: WireConnectionConfiguration = .init()) {
        self.endpoint = endpoint
        self.security = security
        self.name = name
        self.reportInterval = reportInterval
        self.backoff = backoff
        self.connection = connection
    }
}

/// The node's link to qarax-control: dials it (reconnecting with backoff and jitter), says Hello
/// with the node's inventory, reports every VM with its state after each (re)connect, executes the
/// VM operations the control daemon sends through ``NodeService``, and pushes VM state changes,
/// exits and periodic resource reports.
public struct NodeAgent: Sendable {
    public let service: NodeService
    public let configuration: NodeAgentConfiguration
    private let inventory: @Sendable () async -> WireNodeInventory
    private let log: @Sendable (String) -> Void

    /// - Parameters:
    ///   - inventory: the node's inventory, probed again for each Hello.
    ///   - log: one line per connection change.
    public init(service: NodeService, configuration: NodeAgentConfiguration,
                inventory: @escaping @Sendable () async -> WireNodeInventory,
                log: @escaping @Sendable (String) -> Void) {
        self.service = service
        self.configuration = configuration
        self.inventory = inventory
        self.log = log
    }

    /// Keeps the link up until the task is cancelled.
    public func run() async {
        let configuration = self.configuration
        let inventory = self.inventory
        let log = self.log
        let reconnector = WireReconnector(backoff: configuration.backoff) {
            let local = WireLocalIdentity(role: .node, name: configuration.name, capabilities: ["events", "console-tail"],
                                          node: await inventory(), softwareVersion: NodeVersion.current)
            let dialer = WireDialer(endpoint: configuration.endpoint, security: configuration.security, local: local,
                                    expectedPeerRoles: [.control], configuration: configuration.connection,
                                    warn: { log($0) })
            return try await dialer.connect()
        }
        await reconnector.run(onEvent: { event in
            switch event {
            case .connected(let peer): log("connected to \(peer.name) at \(configuration.endpoint)")
            case .disconnected(let reason): log("disconnected from \(configuration.endpoint): \(reason)")
            case .failed(let error, let delay): log("cannot reach \(configuration.endpoint): \(error); retrying in \(delay)")
            }
        }, session: { connection in await session(connection) })
    }

    /// One connection: the VM report first, then requests, state changes and resource reports
    /// until the connection closes.
    func session(_ connection: WireConnection) async {
        let (changes, notify) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let handler = NodeWireHandler(service: service, inventory: inventory, changed: { notify.yield() },
                                      booted: { vmID, elapsed in
            var timings = WireBootTimings()
            timings.vmID = vmID
            timings.bootUs = UInt64(max(0, Microseconds.of(elapsed)))
            try? await connection.push(WireEvent.now(.bootTimings(timings)))
        })
        var initial = VMStateReporter()
        let statuses = await self.statuses()
        var report = WireVMInventoryReport()
        report.vms = statuses
        initial.remember(statuses)
        let remembered = initial
        do {
            try await connection.push(WireEvent.now(.inventory(report)))
        } catch {
            log("could not send the VM report: \(error)")
            return
        }
        let interval = configuration.reportInterval
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await connection.serve(handler) }
            group.addTask {
                var reporter = remembered
                let (ticks, tick) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
                await withTaskGroup(of: Void.self) { timers in
                    timers.addTask {
                        while (try? await Task.sleep(for: interval)) != nil { tick.yield() }
                        tick.finish()
                    }
                    timers.addTask { for await _ in changes { tick.yield() } }
                    var sinceResources = ContinuousClock.now
                    tick.yield()
                    for await _ in ticks {
                        let events = reporter.changes(to: await self.statuses())
                        var ok = true
                        for event in events where ok {
                            ok = (try? await connection.push(WireEvent.now(event))) != nil
                        }
                        if ok && (events.isEmpty || ContinuousClock.now - sinceResources >= interval) {
                            let resources = await self.resources()
                            ok = (try? await connection.push(WireEvent.now(.resources(resources)))) != nil
                            sinceResources = .now
                        }
                        if !ok { break }
                    }
                    timers.cancelAll()
                }
            }
            await group.next()
            group.cancelAll()
        }
        notify.finish()
    }

    private func statuses() async -> [WireVMStatus] {
        guard case .vms(let reports) = await service.handle(.list) else { return [] }
        return reports.map(NodeWireMapping.status)
    }

    private func resources() async -> WireResourceReport {
        let reports: [VMReport] = if case .vms(let all) = await service.handle(.list) { all } else { [] }
        let running = reports.filter { VMStateMachine.State.Kind(rawValue: $0.state).map { NodeWireMapping.state($0) == .running || NodeWireMapping.state($0) == .paused } ?? false }
        let host = await HostPreparation.onHostThread { () -> (UInt64, Double, [WireHugepagePool]) in
            (Self.memoryAvailable(), Self.load1(), NodeInventoryProbe.hugepages(sysfs: "/sys"))
        }
        var report = WireResourceReport()
        report.memoryFreeBytes = host.0
        report.load1 = host.1
        report.hugepages = host.2
        report.vmsRunning = UInt32(running.count)
        report.vcpusAllocated = UInt32(clamping: running.reduce(0) { $0 + $1.vcpus })
        report.memoryAllocatedBytes = UInt64(clamping: running.reduce(0) { $0 + $1.memoryBytes })
        return report
    }

    static func memoryAvailable() -> UInt64 {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kib = UInt64(fields[1]) { return kib << 10 }
        }
        return 0
    }

    static func load1() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return 0 }
        return text.split(separator: " ").first.flatMap { Double($0) } ?? 0
    }
}

enum Microseconds {
    static func of(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    }
}

extension WireEvent {
    /// An event of `kind` stamped with the current time (the connection sets the sequence).
    static func now(_ kind: WireEvent.OneOf_Kind) -> WireEvent {
        var event = WireEvent()
        event.unixMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        event.kind = kind
        return event
    }
}

/// Turns successive VM listings into state-change and exit events (pure).
struct VMStateReporter: Sendable {
    private(set) var known: [String: WireVMState] = [:]

    mutating func remember(_ statuses: [WireVMStatus]) {
        known = Dictionary(statuses.map { ($0.id, $0.state) }, uniquingKeysWith: { a, _ in a })
    }

    /// The events between the last listing and `statuses`; a VM that disappeared is reported stopped.
    mutating func changes(to statuses: [WireVMStatus]) -> [WireEvent.OneOf_Kind] {
        var events: [WireEvent.OneOf_Kind] = []
        var seen = Set<String>()
        for status in statuses {
            seen.insert(status.id)
            let before = known[status.id] ?? .unspecified
            guard before != status.state else { continue }
            var change = WireVMStateChanged()
            change.vmID = status.id
            change.from = before
            change.to = status.state
            events.append(.stateChanged(change))
            if status.state == .stopped || status.state == .failed, [.running, .paused, .stopping].contains(before) {
                var exit = WireVMExited()
                exit.vmID = status.id
                exit.reason = status.state == .failed ? .crashed : (before == .stopping ? .stopped : .shutdown)
                events.append(.exited(exit))
            }
        }
        for (id, state) in known where !seen.contains(id) && state != .stopped {
            var change = WireVMStateChanged()
            change.vmID = id
            change.from = state
            change.to = .stopped
            events.append(.stateChanged(change))
        }
        remember(statuses)
        return events
    }
}
