import Foundation
public import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Serves the node's operations on its root-only (0600) Unix socket with the Wire protocol, in
/// plaintext (a Unix socket needs no TLS): the same ``NodeWireHandler`` as the control link, for
/// admin clients (``NodeClient``, `qarax-node vm …`).
public final class NodeLocalServer: Sendable {
    public let path: String
    private let listener: WireListener
    private let task: Task<Void, Never>

    /// Binds `path` (a stale socket file there is replaced), mode 0600, and starts serving. `log`
    /// gets one line per state-changing request and per refusal.
    public init(path: String, handler: NodeWireHandler, local: WireLocalIdentity,
                log: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try HostFiles.makeDirectories(directory, mode: 0o755) }
        let listener = try await WireListener.bind(endpoint: .unix(path: path), security: .insecurePlaintext,
                                                   local: local, acceptedRoles: [.admin])
        self.listener = listener
        let logged = LoggingHandler(inner: handler, log: log)
        task = Task {
            try? await listener.run(onRefused: { log("local socket: refused a client: \($0)") }) { connection in
                await connection.serve(logged)
            }
        }
    }

    /// Stops accepting, ends the connections in flight and removes the socket file.
    public func stop() async {
        await listener.close()
        task.cancel()
        await task.value
        _ = unlink(path)
    }

    /// `vm start web1: ok (0.152 s)`, `vm create web1: invalid_spec: …`; nothing for reads that succeeded.
    static func logLine(_ request: NodeRequest, _ response: NodeResponse, elapsed: Duration) -> String? {
        let verb: String
        switch request {
        case .create(let spec): verb = "create \(spec.name)"
        case .start(let name): verb = "start \(name)"
        case .stop(let name): verb = "stop \(name)"
        case .pause(let name): verb = "pause \(name)"
        case .resume(let name): verb = "resume \(name)"
        case .reboot(let name): verb = "reboot \(name)"
        case .powerButton(let name): verb = "power-button \(name)"
        case .delete(let name): verb = "delete \(name)"
        case .info(let name): verb = "info \(name)"
        case .console(let name, _, _): verb = "console \(name)"
        case .list: verb = "list"
        }
        let (seconds, attoseconds) = elapsed.components
        let time = String(format: "%.3f s", Double(seconds) + Double(attoseconds) / 1e18)
        if case .error(let error) = response {
            return "vm \(verb): \(error.code.rawValue): \(error.description.replacingOccurrences(of: "\n", with: "; ")) (\(time))"
        }
        switch request {
        case .info, .list, .console: return nil
        default: return "vm \(verb): ok (\(time))"
        }
    }

    /// Logs each request the node service carries out, then answers as `inner` does.
    struct LoggingHandler: WireRequestHandler {
        let inner: NodeWireHandler
        let log: @Sendable (String) -> Void

        func handle(_ request: WireRequest, from peer: WirePeer) async throws -> WireResponse {
            let nodeRequest = try? NodeWireMapping.request(request)
            let clock = ContinuousClock()
            let began = clock.now
            do {
                let response = try await inner.handle(request, from: peer)
                if let nodeRequest,
                   let line = NodeLocalServer.logLine(nodeRequest, NodeWireMapping.nodeResponse(response), elapsed: clock.now - began) {
                    log(line)
                }
                return response
            } catch let error as NodeServiceError {
                if let nodeRequest, let line = NodeLocalServer.logLine(nodeRequest, .error(error), elapsed: clock.now - began) {
                    log(line)
                }
                throw error
            }
        }
    }
}
