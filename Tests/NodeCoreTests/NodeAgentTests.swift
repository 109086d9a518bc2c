import Foundation
import NodeCore
import Synchronization
import Testing
import VMModel
import Wire

/// The real node agent (NodeService over NodeRuntime with `ch-sim`) against a Wire listener
/// standing in for qarax-control's node port: the Wire link is real, only the control logic is absent.
@Suite("Node agent over Wire", .enabled(if: nodeTestsCanRun, nodeTestsReason))
struct NodeAgentTests {
    /// Connections accepted by a control-side listener, handed to the test one by one.
    final class ControlPort: Sendable {
        let listener: WireListener
        let connections: AsyncStream<WireConnection>
        private let input: AsyncStream<WireConnection>.Continuation
        private let serving: Mutex<Task<Void, any Error>?> = Mutex(nil)
        private let open = OpenConnections()

        final class OpenConnections: Sendable {
            let list = Mutex<[WireConnection]>([])
        }

        init(port: Int) async throws {
            listener = try await WireListener.bind(
                endpoint: .tcp(host: "127.0.0.1", port: port), security: .insecurePlaintext,
                local: WireLocalIdentity(role: .control, name: "qarax-control"), acceptedRoles: [.node], warn: { _ in })
            (connections, input) = AsyncStream.makeStream(of: WireConnection.self)
            let listener = self.listener
            let input = self.input
            let open = self.open
            serving.withLock { $0 = Task {
                try await listener.run { connection in
                    open.list.withLock { $0.append(connection) }
                    input.yield(connection)
                    await connection.closed()
                }
            } }
        }

        var port: Int { listener.port ?? 0 }

        func next() async throws -> WireConnection {
            try await within(.seconds(20), "a node connection") { [connections] in
                for await connection in connections { return connection }
                throw FixtureError("the listener stopped")
            }
        }

        /// Closes the port and every connection on it, as a control daemon exiting would.
        func stop() async {
            let task = serving.withLock { $0 }
            for connection in open.list.withLock({ $0 }) { await connection.close() }
            task?.cancel()
            await listener.close()
            _ = await task?.result
            input.finish()
        }
    }

    /// The next event of `kind` (earlier ones of other kinds are skipped), within a deadline.
    static func event(_ events: AsyncStream<WireEvent>, _ what: String,
                      where matches: @escaping @Sendable (WireEvent) -> Bool) async throws -> WireEvent {
        try await within(.seconds(20), what) {
            for await event in events where matches(event) { return event }
            throw FixtureError("connection closed before \(what)")
        }
    }

    static func request(_ op: WireRequest.OneOf_Op) -> WireRequest {
        var request = WireRequest()
        request.op = op
        return request
    }

    static func ref(_ vm: String) -> WireVMRef {
        var ref = WireVMRef()
        ref.vm = vm
        return ref
    }

    @Test("hello with inventory, VM report on every connect, operations, events, reconnect after a control restart")
    func agentLifecycle() async throws {
        try await NodeFixture.run { fixture, node in
            let before = try await node.create(fixture.spec("before"))
            try await before.start()
            fixture.track(await before.status.vmmProcess?.pid)

            let first = try await ControlPort(port: 0)
            let port = first.port
            var configuration = NodeAgentConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port),
                                                       security: .insecurePlaintext, name: "node-\(fixture.prefix)",
                                                       reportInterval: .milliseconds(200),
                                                       backoff: WireBackoff(initial: .milliseconds(20), maximum: .milliseconds(200)))
            configuration.connection.heartbeatInterval = .seconds(1)
            let backends = NodeInventoryProbe.Backends(active: .cloudHypervisor, activeBinary: fixture.backend.binary,
                                                       searchPath: "/usr/bin:/bin")
            let agent = NodeAgent(service: NodeService(runtime: node), configuration: configuration,
                                  inventory: { await NodeInventoryProbe.probe(backends: backends) }, log: { _ in })
            let running = Task { await agent.run() }
            defer { running.cancel() }

            let connection = try await first.next()
            #expect(connection.peer.role == .node && connection.peer.name == "node-\(fixture.prefix)")
            let inventory = try #require(connection.peer.node)
            #expect(inventory.cpus > 0 && inventory.memoryBytes > 0)
            #expect(inventory.backends.contains { $0.name == "cloud-hypervisor" && $0.path == fixture.backend.binary })
            #expect(inventory.nodeVersion == NodeVersion.current)

            let events = connection.events
            let report = try await Self.event(events, "the VM report") { if case .inventory = $0.kind { true } else { false } }
            guard case .inventory(let vms) = report.kind else { return }
            #expect(vms.vms.map(\.id) == [before.id] && vms.vms.first?.state == .running)

            var spec = fixture.spec("wire")
            let wireID = fixture.prefix + "-wire"
            spec.id = wireID
            let created = try await connection.call(Self.request(.create(try WireCreateVM(spec: spec, start: true))))
            guard case .vm(let status) = created.result else { Issue.record("create answered \(created)"); return }
            #expect(status.id == spec.id && status.state == .running)
            fixture.track(Int32(status.vmmPid))
            let boot = try await Self.event(events, "boot timings") {
                if case .bootTimings(let timings) = $0.kind { timings.vmID == wireID } else { false }
            }
            #expect(boot.sequence > report.sequence)

            // The guest's marker reaches the console log shortly after the start answered: ask until it is there.
            let marker = try await within(.seconds(20), "the ready marker in the console tail") { () -> Bool in
                var tail = WireConsoleTail()
                tail.vm = wireID
                tail.maxBytes = 4096
                while true {
                    let console = try await connection.call(Self.request(.consoleTail(tail)))
                    guard case .console(let data) = console.result else { return false }
                    if String(decoding: data.data, as: UTF8.self).contains("QARAX-GUEST-READY") { return true }
                    await Task.yield()
                }
            }
            #expect(marker)

            var stop = WireStopVM()
            stop.vm = wireID
            let stopped = try await connection.call(Self.request(.stop(stop)))
            guard case .vm(let after) = stopped.result else { Issue.record("stop answered \(stopped)"); return }
            #expect(after.state == .stopped)
            _ = try await Self.event(events, "the state change to stopped") {
                if case .stateChanged(let change) = $0.kind { change.vmID == wireID && change.to == .stopped } else { false }
            }
            _ = try await Self.event(events, "a resource report") {
                if case .resources(let resources) = $0.kind { resources.vmsRunning == 1 } else { false }
            }

            do {
                _ = try await connection.call(Self.request(.start(Self.ref("no-such-vm"))))
                Issue.record("starting an unknown VM succeeded")
            } catch WireError.remote(let error) {
                #expect(error.code == .notFound)
            }

            // The control daemon goes away and comes back on the same port: the node reconnects and
            // reports its VMs as they are.
            await first.stop()
            // Rebinding may briefly collide with a parallel test's ephemeral port: retry until the deadline.
            let second = try await within(.seconds(20), "the control port \(port) bound again") { () -> ControlPort in
                while true {
                    if let bound = try? await ControlPort(port: port) { return bound }
                    try Task.checkCancellation()
                    await Task.yield()
                }
            }
            let again = try await second.next()
            let resync = try await Self.event(again.events, "the VM report after reconnecting") {
                if case .inventory = $0.kind { true } else { false }
            }
            guard case .inventory(let now) = resync.kind else { return }
            let states = Dictionary(uniqueKeysWithValues: now.vms.map { ($0.id, $0.state) })
            #expect(states == [before.id: .running, wireID: .stopped])

            let deleted = try await again.call(Self.request(.delete(Self.ref(wireID))))
            #expect(deleted.result == .done(WireEmpty()))
            running.cancel()
            await running.value
            await second.stop()
        }
    }
}
