public import Wire
import Synchronization

/// The control daemon's node port: accepts node agents over Wire (mutual TLS unless insecure),
/// checks each node's identity and hands its link to ``ControlService/serve(link:)``.
public struct NodeListenerConfiguration: Sendable {
    public var endpoint: WireEndpoint
    public var security: WireSecurity
    /// The control daemon's name; its certificate must carry it (`pki issue-control`).
    public var name: String
    public var connection: WireConnectionConfiguration
    /// How long a node has after its Hello to send its VM inventory report.
    public var reportTimeout: Duration

    public init(endpoint: WireEndpoint, security: WireSecurity, name: String = "qarax-control",
                connection: WireConnectionConfiguration = .init(), reportTimeout: Duration = .seconds(10)) {
        self.endpoint = endpoint
        self.security = security
        self.name = name
        self.connection = connection
        self.reportTimeout = reportTimeout
    }
}

/// Serves node connections for a ``ControlService``.
public enum NodeListener {
    /// Binds the node port; `log` receives one line per node connecting, leaving or refused.
    public static func bind(_ configuration: NodeListenerConfiguration, softwareVersion: String = "",
                            warn: @escaping @Sendable (String) -> Void = WireSecurity.standardErrorWarning)
        async throws -> WireListener {
        let local = WireLocalIdentity(role: .control, name: configuration.name, capabilities: ["events"],
                                      softwareVersion: softwareVersion)
        return try await WireListener.bind(endpoint: configuration.endpoint, security: configuration.security,
                                           local: local, acceptedRoles: [.node],
                                           configuration: configuration.connection, warn: warn)
    }

    /// Accepts nodes on `listener` until cancelled (then returns normally), each served by `service`
    /// for the life of its link.
    public static func serve(_ listener: WireListener, service: ControlService, reportTimeout: Duration = .seconds(10),
                             log: @escaping @Sendable (String) -> Void) async throws {
        do {
            try await accept(listener, service: service, reportTimeout: reportTimeout, log: log)
        } catch is CancellationError {
            return
        } catch where Task.isCancelled {
            return
        }
    }

    private static func accept(_ listener: WireListener, service: ControlService, reportTimeout: Duration,
                               log: @escaping @Sendable (String) -> Void) async throws {
        let open = OpenConnections()
        try await withTaskCancellationHandler {
            try await listener.run(onRefused: { error in log("node connection refused: \(error)") }) { connection in
                guard open.insert(connection) else {
                    await connection.close()
                    return
                }
                defer { open.remove(connection) }
                let link: WireNodeLink
                do {
                    link = try await WireNodeLink.accept(connection, reportTimeout: reportTimeout, eventLag: service.eventLag)
                } catch {
                    log("node connection refused: \(error)")
                    return
                }
                log("node \(link.hello.name) connected from \(link.hello.address) reporting \(link.hello.vms.count) VMs")
                do {
                    try await service.serve(link: link)
                    log("node \(link.hello.name) disconnected: \(await connection.closed())")
                } catch {
                    log("node \(link.hello.name) link ended: \(error)")
                }
            }
        } onCancel: {
            // Stop accepting, and close every node link: each one's event stream ends, so its
            // serve loop finishes whatever it was awaiting.
            let connections = open.closeAll()
            Task {
                await listener.close()
                for connection in connections { await connection.close() }
            }
        }
    }
}

/// The node connections being served, so a shutdown can close them all.
private final class OpenConnections: Sendable {
    private struct State {
        var connections: [ObjectIdentifier: WireConnection] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    /// False once the listener is shutting down (the connection is to be closed at once).
    func insert(_ connection: WireConnection) -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.connections[ObjectIdentifier(connection)] = connection
            return true
        }
    }

    func remove(_ connection: WireConnection) {
        _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(connection)) }
    }

    /// Marks the set closed and returns every connection in it.
    func closeAll() -> [WireConnection] {
        state.withLock { state in
            state.closed = true
            return Array(state.connections.values)
        }
    }
}
