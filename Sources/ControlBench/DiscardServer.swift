import ControlCore
import Foundation
import Hummingbird
import NIOCore
import Synchronization
public import Wire

/// The baseline of `qarax-bench control`: the same stack as qarax-control — Wire listener, TLS,
/// node link acceptance (Hello, inventory report), event decoding and lag histogram, Hummingbird
/// HTTP — with no control logic behind it: events are discarded, API calls get a canned answer,
/// nothing is stored.
public enum DiscardServer {
    private final class Counters: Sendable {
        let connected = Atomic<Int>(0)
        let serial = Atomic<Int>(0)
    }

    public static func run(api: (host: String, port: Int), nodes: WireEndpoint, security: WireSecurity,
                           onReady: @escaping @Sendable (Int, Int) -> Void) async throws {
        let lag = LatencyHistogram()
        let counters = Counters()
        let local = WireLocalIdentity(role: .control, name: "qarax-control", capabilities: ["events"],
                                      softwareVersion: "discard")
        let listener = try await WireListener.bind(endpoint: nodes, security: security, local: local, acceptedRoles: [.node],
                                                   warn: { _ in })
        let router = Router(context: BasicRequestContext.self)
        @Sendable func canned(_ status: HTTPResponse.Status, _ body: String) -> Response {
            Response(status: status, headers: [.contentType: "application/json"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        }
        router.post("/v1/vms") { request, _ in
            _ = try await request.body.collect(upTo: 1 << 20)
            let n = counters.serial.add(1, ordering: .relaxed).newValue
            return canned(.created, #"{"vm":{"id":"vm-\#(n)"},"operation":{"id":"op-\#(n)"}}"#)
        }
        for action in ["start", "stop", "pause", "resume", "reboot"] {
            router.post("/v1/vms/{id}/\(action)") { _, _ in
                canned(.accepted, #"{"id":"op-\#(counters.serial.add(1, ordering: .relaxed).newValue)","status":"pending"}"#)
            }
        }
        router.get("/v1/vms/{id}") { _, context in
            canned(.ok, #"{"id":"\#(try context.parameters.require("id"))","observed_state":"running"}"#)
        }
        router.delete("/v1/vms/{id}") { _, _ in
            canned(.accepted, #"{"id":"op-\#(counters.serial.add(1, ordering: .relaxed).newValue)","status":"pending"}"#)
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: ResponseBody(byteBuffer: ByteBuffer(
                string: "qarax_nodes_alive \(counters.connected.load(ordering: .relaxed))\n"
                    + lag.prometheus(name: "qarax_node_event_lag_seconds", help: "Node event lag."))))
        }
        let nodePort = listener.port ?? 0
        let app = Application(router: router,
                              configuration: .init(address: .hostname(api.host, port: api.port), serverName: "qarax-discard"),
                              onServerRunning: { channel in onReady(channel.localAddress?.port ?? api.port, nodePort) })
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                try await withTaskCancellationHandler {
                    try await listener.run { connection in
                        guard let link = try? await WireNodeLink.accept(connection, eventLag: lag) else { return }
                        await link.routeLiveness {}
                        counters.connected.add(1, ordering: .relaxed)
                        for await _ in link.events {}
                        counters.connected.subtract(1, ordering: .relaxed)
                    }
                } onCancel: {
                    Task { await listener.close() }
                }
            }
            try await app.runService()
            group.cancelAll()
        }
    }
}
