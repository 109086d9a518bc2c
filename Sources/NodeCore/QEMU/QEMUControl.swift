import VMModel
import Synchronization

/// The QMP control and event stream of one QEMU process.
final class QEMUControl: VMMControl {
    let events: AsyncStream<VMStateMachine.Event>
    private let client: QMPClient
    private let spec: VMSpec
    private let callTimeout: Duration
    private let powerdownGrace: Duration
    private let forwarding: Task<Void, Never>
    private let shutdownSeen: ShutdownLatch

    init(client: QMPClient, spec: VMSpec, callTimeout: Duration, powerdownGrace: Duration) {
        self.client = client
        self.spec = spec
        self.callTimeout = callTimeout
        self.powerdownGrace = powerdownGrace
        let (stream, continuation) = AsyncStream.makeStream(of: VMStateMachine.Event.self)
        events = stream
        let latch = ShutdownLatch()
        shutdownSeen = latch
        let qmpEvents = client.events
        // QMP's stream ends when the connection does (QEMU exited, or close()).
        forwarding = Task {
            for await event in qmpEvents {
                guard let mapped = QEMUBackend.stateEvent(for: event.kind) else { continue }
                if mapped == .vmShutdown || mapped == .vmmShutdown { latch.open() }
                continuation.yield(mapped)
            }
            latch.open()
            continuation.finish()
        }
    }

    /// Runs `body` with a deadline; `nil` when the deadline passed first (the body is cancelled).
    static func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async -> Result<T, QMPError>)
        async -> Result<T, QMPError>? {
        await withTaskGroup(of: Result<T, QMPError>?.self) { group in
            group.addTask { await body() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// One QMP command with the call deadline, its failure as a state machine call error.
    private func call(_ name: String, _ body: @escaping @Sendable (QMPClient) async throws(QMPError) -> QMPValue)
        async throws(VMStateMachine.CallError) -> QMPValue {
        let client = self.client
        let result = await Self.withDeadline(callTimeout) { () async -> Result<QMPValue, QMPError> in
            do throws(QMPError) { return .success(try await body(client)) } catch { return .failure(error) }
        }
        switch result {
        case .success(let value): return value
        case .failure(let error): throw QEMUBackend.callError(error)
        case nil: throw VMStateMachine.CallError(.noAnswer, chain: ["QMP \(name)", "no answer within \(callTimeout)"])
        }
    }

    private func command(_ name: String) async throws(VMStateMachine.CallError) {
        _ = try await call(name) { client throws(QMPError) in try await client.execute(name) }
    }

    func perform(_ call: VMStateMachine.Call) async throws(VMStateMachine.CallError) {
        switch call {
        case .create:
            // QEMU was started with the whole VM and its vCPUs stopped (-S): check it is there.
            let value = try await self.call("query-status") { client throws(QMPError) in try await client.execute("query-status") }
            let state = value["status"]?.stringValue ?? ""
            guard state == QMPRunState.prelaunch.rawValue || state == QMPRunState.paused.rawValue else {
                throw VMStateMachine.CallError(.rejected(status: 409), chain: ["QMP query-status", "QEMU is \(state), expected prelaunch"])
            }
        case .boot, .resume: try await command("cont")
        case .pause: try await command("stop")
        case .reboot: try await command("system_reset")
        case .powerButton: try await command("system_powerdown")
        }
    }

    func shutdown() async {
        if powerdownGrace > .zero,
           let status = try? await call("query-status", { client throws(QMPError) in try await client.execute("query-status") }),
           status["running"]?.boolValue == true,
           (try? await command("system_powerdown")) != nil {
            let latch = shutdownSeen
            _ = await Self.withDeadline(powerdownGrace) { () async -> Result<Bool, QMPError> in
                await latch.wait()
                return .success(true)
            }
        }
        _ = try? await command("quit")
    }

    func delete() async throws(VMStateMachine.CallError) {
        do {
            try await command("quit")
        } catch where error.kind == .vmmGone {
            // Already on its way out.
        }
    }

    func info() async throws(VMStateMachine.CallError) -> VMMInfo {
        let value = try await call("query-status") { client throws(QMPError) in try await client.execute("query-status") }
        let state = value["status"]?.stringValue ?? "unknown"
        return VMMInfo(vmmState: state, memoryBytes: Int64(spec.memory.size.bytes), raw: Array(value.description.utf8))
    }

    func counters() async throws(VMStateMachine.CallError) -> [String: [String: Int64]] {
        throw Self.unsupported("counters")
    }

    func resize(vcpus: Int?, memoryBytes: Int64?) async throws(VMStateMachine.CallError) {
        throw Self.unsupported("resize")
    }

    func addNIC(_ nic: NICSpec, host: HostNIC) async throws(VMStateMachine.CallError) -> VMMDevice {
        throw Self.unsupported("NIC hotplug")
    }

    func addDisk(_ disk: DiskSpec) async throws(VMStateMachine.CallError) -> VMMDevice {
        throw Self.unsupported("disk hotplug")
    }

    func removeDevice(id: String) async throws(VMStateMachine.CallError) {
        _ = try await call("device_del") { client throws(QMPError) in
            try await client.execute("device_del", arguments: ["id": .string(id)])
        }
    }

    func close() {
        forwarding.cancel()
        client.close()
    }

    private static func unsupported(_ what: String) -> VMStateMachine.CallError {
        VMStateMachine.CallError(.rejected(status: 501), chain: ["qemu backend", "\(what) is not supported by the qemu backend"])
    }
}

/// Opens once (the guest powered off, or QEMU is going away); waiters resume then, or when
/// their task is cancelled.
final class ShutdownLatch: Sendable {
    private struct State {
        var open = false
        var next = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        let id = state.withLock { state in
            defer { state.next += 1 }
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.open || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
