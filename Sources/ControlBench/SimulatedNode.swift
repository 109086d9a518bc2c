import Foundation
import Synchronization
import VMModel
public import Wire

/// What every simulated node of a fleet shares: where control is, how it proves who it is, how
/// often it beats.
public struct FleetConfiguration: Sendable {
    public var endpoint: WireEndpoint
    /// The TLS identity of node `index` (its certificate names it), or plaintext.
    public var security: @Sendable (Int) -> WireSecurity
    /// Node names are `<prefix>-<index>`.
    public var namePrefix: String
    /// A liveness report (a resources event, as `qarax-node` sends) each interval.
    public var beatInterval: Duration
    /// The Wire connection's heartbeat interval (a heartbeat goes out when nothing came in for
    /// that long; its round trip is what the fleet measures).
    public var wireHeartbeatInterval: Duration
    /// Each wait between beats is drawn from `interval·(1 ± jitter)`.
    public var jitter: Double
    public var backoff: WireBackoff

    public init(endpoint: WireEndpoint, security: @escaping @Sendable (Int) -> WireSecurity, namePrefix: String = "sim",
                beatInterval: Duration = .seconds(1), wireHeartbeatInterval: Duration = .seconds(5), jitter: Double = 0.2,
                backoff: WireBackoff = WireBackoff(initial: .milliseconds(200), maximum: .seconds(5))) {
        self.endpoint = endpoint
        self.security = security
        self.namePrefix = namePrefix
        self.beatInterval = beatInterval
        self.wireHeartbeatInterval = wireHeartbeatInterval
        self.jitter = jitter
        self.backoff = backoff
    }

    public func name(_ index: Int) -> String { "\(namePrefix)-\(index)" }
}

/// Counters and samples of a fleet, shared by all its nodes.
public final class FleetStats: Sendable {
    private struct State {
        var connected = Set<Int>()
        var connects = 0
        var disconnects = 0
        var failedAttempts = 0
        var beats = 0
        var requests = 0
        var recording = false
        var roundTrips: [Double] = []
        var lastError: String?
    }

    private let state = Mutex(State())

    public init() {}

    /// Nodes whose link is up and whose VM report has been sent.
    public var connectedCount: Int { state.withLock { $0.connected.count } }

    public struct Counters: Sendable, Hashable {
        public var connects: Int
        public var disconnects: Int
        public var failedAttempts: Int
        public var beats: Int
        public var requests: Int
        public var lastError: String?
    }

    public var counters: Counters {
        state.withLock { Counters(connects: $0.connects, disconnects: $0.disconnects, failedAttempts: $0.failedAttempts,
                                  beats: $0.beats, requests: $0.requests, lastError: $0.lastError) }
    }

    /// Starts collecting heartbeat round trips (dropping earlier ones).
    public func startRecording() {
        state.withLock { state in
            state.recording = true
            state.roundTrips.removeAll(keepingCapacity: true)
        }
    }

    /// Stops collecting and returns the round trips (seconds) since ``startRecording()``.
    public func stopRecording() -> [Double] {
        state.withLock { state in
            state.recording = false
            defer { state.roundTrips.removeAll() }
            return state.roundTrips
        }
    }

    func roundTrip(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let value = Double(seconds) + Double(attoseconds) / 1e18
        state.withLock { if $0.recording { $0.roundTrips.append(value) } }
    }

    func up(_ index: Int) {
        state.withLock { state in
            state.connected.insert(index)
            state.connects += 1
        }
    }

    func down(_ index: Int) {
        state.withLock { state in
            if state.connected.remove(index) != nil { state.disconnects += 1 }
        }
    }

    func failed(_ error: any Error) {
        state.withLock { state in
            state.failedAttempts += 1
            state.lastError = "\(error)"
        }
    }
    func beat() { state.withLock { $0.beats += 1 } }
    func request() { state.withLock { $0.requests += 1 } }
}

/// N simulated nodes speaking the real Wire protocol: each dials, says Hello with an inventory,
/// reports its VMs, answers VM operations from its own in-memory table, and beats until stopped.
/// Links reconnect with backoff and jitter like `qarax-node`'s agent.
public final class SimulatedFleet: Sendable {
    public let configuration: FleetConfiguration
    public let stats = FleetStats()
    private let tasks = Mutex<[Task<Void, Never>]>([])

    public init(configuration: FleetConfiguration) {
        self.configuration = configuration
    }

    /// Starts nodes `range`, at most `rate` new dials per second (a ramp, not a storm).
    public func start(_ range: Range<Int>, rate: Int) async {
        let started = ContinuousClock.now
        for (offset, index) in range.enumerated() {
            if rate > 0, offset % max(1, rate / 50) == 0 {
                let due = started + .seconds(Double(offset) / Double(rate))
                try? await Task.sleep(until: due, clock: .continuous)
            }
            let task = Task { await self.run(index) }
            tasks.withLock { $0.append(task) }
        }
    }

    /// Stops every node (their links close).
    public func stop() async {
        let all = tasks.withLock { tasks in defer { tasks.removeAll() }; return tasks }
        for task in all { task.cancel() }
        for task in all { await task.value }
    }

    private func run(_ index: Int) async {
        let configuration = self.configuration
        let stats = self.stats
        let name = configuration.name(index)
        var connection = WireConnectionConfiguration(heartbeatInterval: configuration.wireHeartbeatInterval)
        connection.heartbeatRoundTrip = { stats.roundTrip($0) }
        let local = WireLocalIdentity(role: .node, name: name, capabilities: ["events"],
                                      node: Self.inventory(name), softwareVersion: "qarax-bench")
        let dialer = WireDialer(endpoint: configuration.endpoint, security: configuration.security(index), local: local,
                                expectedPeerRoles: [.control], configuration: connection, warn: { _ in })
        let reconnector = WireReconnector(backoff: configuration.backoff) { try await dialer.connect() }
        let table = SimulatedVMTable()
        await reconnector.run(onEvent: { event in
            if case .failed(let error, _) = event { stats.failed(error) }
        }) { link in
            var report = WireVMInventoryReport()
            report.vms = table.all()
            guard (try? await link.push(Self.event(.inventory(report)))) != nil else { return }
            stats.up(index)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await link.serve(SimulatedNodeHandler(table: table, stats: stats)) }
                group.addTask {
                    var generator = SystemRandomNumberGenerator()
                    while !Task.isCancelled {
                        let factor = 1 + Double.random(in: -configuration.jitter...configuration.jitter, using: &generator)
                        guard (try? await Task.sleep(for: configuration.beatInterval * factor)) != nil else { return }
                        var resources = WireResourceReport()
                        resources.vmsRunning = UInt32(table.running)
                        guard (try? await link.push(Self.event(.resources(resources)))) != nil else { return }
                        stats.beat()
                    }
                }
                await group.next()
                group.cancelAll()
            }
            stats.down(index)
        }
        stats.down(index)
    }

    static func event(_ kind: WireEvent.OneOf_Kind) -> WireEvent {
        var event = WireEvent()
        event.kind = kind
        return event
    }

    /// A large host, so placement never runs out of room during a run.
    static func inventory(_ name: String) -> WireNodeInventory {
        var inventory = WireNodeInventory()
        inventory.hostname = name
        inventory.cpus = 64
        inventory.memoryBytes = 256 << 30
        inventory.kvm = true
        inventory.kvmFlavor = "simulated"
        var backend = WireVMMBackend()
        backend.name = "cloud-hypervisor"
        backend.version = "simulated"
        inventory.backends = [backend]
        inventory.nodeVersion = "qarax-bench"
        return inventory
    }
}

/// A simulated node's VMs: state only, no processes.
final class SimulatedVMTable: Sendable {
    private let vms = Mutex<[String: WireVMStatus]>([:])

    func all() -> [WireVMStatus] { vms.withLock { Array($0.values) } }
    var running: Int { vms.withLock { $0.values.filter { $0.state == .running }.count } }

    func create(_ status: WireVMStatus) -> Bool {
        vms.withLock { table in
            guard table[status.id] == nil else { return false }
            table[status.id] = status
            return true
        }
    }

    func set(_ id: String, _ state: WireVMState) -> WireVMStatus? {
        vms.withLock { table in
            guard var status = table[id] else { return nil }
            status.state = state
            table[id] = status
            return status
        }
    }

    func remove(_ id: String) -> Bool { vms.withLock { $0.removeValue(forKey: id) != nil } }
    func get(_ id: String) -> WireVMStatus? { vms.withLock { $0[id] } }
}

/// Answers control's VM operations the way `qarax-node` does, from the in-memory table.
struct SimulatedNodeHandler: WireRequestHandler {
    let table: SimulatedVMTable
    let stats: FleetStats

    func handle(_ request: WireRequest, from peer: WirePeer) async throws -> WireResponse {
        stats.request()
        var response = WireResponse()
        switch request.op {
        case .create(let create):
            let spec = try create.spec()
            var status = WireVMStatus()
            status.id = spec.id ?? spec.name
            status.name = spec.name
            status.state = create.start ? .running : .created
            status.backend = "cloud-hypervisor"
            status.vcpus = UInt32(spec.cpus.bootVCPUs)
            status.memoryBytes = UInt64(spec.memory.size.bytes)
            guard table.create(status) else { throw SimulatedNodeError(code: .alreadyExists, "VM \(status.id) exists") }
            response.result = .vm(status)
        case .start(let ref): response.result = .vm(try transition(ref.vm, to: .running))
        case .stop(let stop): response.result = .vm(try transition(stop.vm, to: .stopped))
        case .pause(let ref): response.result = .vm(try transition(ref.vm, to: .paused))
        case .resume(let ref): response.result = .vm(try transition(ref.vm, to: .running))
        case .reboot(let ref), .powerButton(let ref): response.result = .vm(try transition(ref.vm, to: .running))
        case .info(let ref):
            guard let status = table.get(ref.vm) else { throw SimulatedNodeError(code: .notFound, "no VM \(ref.vm)") }
            response.result = .vm(status)
        case .delete(let ref):
            guard table.remove(ref.vm) else { throw SimulatedNodeError(code: .notFound, "no VM \(ref.vm)") }
            response.result = .done(WireEmpty())
        case .list:
            var list = WireVMList()
            list.vms = table.all()
            response.result = .vms(list)
        case .nodeInfo:
            response.result = .node(SimulatedFleet.inventory(peer.name))
        case .consoleTail, .addNic, .removeNic, .addDisk, .removeDisk, nil:
            throw SimulatedNodeError(code: .unimplemented, "a simulated node has no devices or console")
        }
        return response
    }

    private func transition(_ id: String, to state: WireVMState) throws -> WireVMStatus {
        guard let status = table.set(id, state) else { throw SimulatedNodeError(code: .notFound, "no VM \(id)") }
        return status
    }
}

/// A simulated node's refusal, with the Wire code `qarax-node` would use.
struct SimulatedNodeError: WireMappableError, CustomStringConvertible {
    var wireCode: WireErrorCode
    var wireMessage: String
    init(code: WireErrorCode, _ message: String) {
        wireCode = code
        wireMessage = message
    }
    var description: String { wireMessage }
}
