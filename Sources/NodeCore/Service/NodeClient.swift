public import Foundation
public import Wire
import Synchronization

/// Why a client exchange with the node failed.
public enum NodeClientError: Error, Sendable, CustomStringConvertible {
    /// The node's socket could not be reached.
    case connect(path: String, reason: String)
    /// The link broke or the node broke the protocol.
    case wire(WireError)
    /// No answer before the deadline.
    case timeout(Duration)
    /// The node refused the request.
    case node(NodeServiceError)

    public var description: String {
        switch self {
        case .connect(let path, let reason):
            "cannot reach the node at \(path): \(reason) (is `qarax-node serve` running, and are you root?)"
        case .wire(let error): "node protocol: \(error)"
        case .timeout(let limit): "no answer from the node within \(limit)"
        case .node(let error): error.description
        }
    }
}

/// A blocking client of the node daemon's local socket, which speaks Wire (plaintext; the socket
/// is root-only). For command-line tools and tests; call it from a thread that may block.
public struct NodeClient: Sendable {
    public let socketPath: String
    /// How long one answer may take.
    public static let callTimeout: Duration = .seconds(120)

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// Sends `request` and returns the node's answer (a refusal as ``NodeResponse/error(_:)``);
    /// `timeout` bounds the wait for it.
    public func send(_ request: NodeRequest, timeout: Duration? = nil) throws(NodeClientError) -> NodeResponse {
        let wire = try Self.wireRequest(request)
        let connection = try connect()
        defer { close(connection) }
        do {
            return NodeWireMapping.nodeResponse(try Self.blocking { () async throws(NodeClientError) -> WireResponse in
                try await Self.call(connection, wire, timeout: timeout ?? Self.callTimeout)
            })
        } catch .node(let error) {
            return .error(error)
        }
    }

    /// Follows the console of `name` from `offset`: `onChunk` gets each new piece of the log and
    /// returns whether to go on. Each call asks from the last `next` offset and the node waits a
    /// bounded time for new bytes (long-poll). Ends when `onChunk` says stop, the node refuses (the
    /// VM was deleted: its error is thrown), or `deadline` passes (``NodeClientError/timeout(_:)``).
    public func followConsole(name: String, offset: Int64 = 0, deadline: ContinuousClock.Instant? = nil,
                              _ onChunk: (Data) -> Bool) throws(NodeClientError) {
        let connection = try connect()
        defer { close(connection) }
        var from = offset
        while true {
            var limit = NodeService.followWait + .seconds(30)
            if let deadline {
                let left = deadline - .now
                guard left > .zero else { throw .timeout(.zero) }
                limit = min(limit, left)
            }
            let request = try Self.wireRequest(.console(name: name, offset: from, follow: true))
            let wait = limit
            let answer = NodeWireMapping.nodeResponse(try Self.blocking { () async throws(NodeClientError) -> WireResponse in
                try await Self.call(connection, request, timeout: wait)
            })
            guard case .console(_, let next, let bytes) = answer else {
                if case .error(let error) = answer { throw .node(error) }
                throw .wire(.protocolViolation("unexpected answer to a console request"))
            }
            if !bytes.isEmpty && !onChunk(bytes) { return }
            from = next
        }
    }

    static func wireRequest(_ request: NodeRequest) throws(NodeClientError) -> WireRequest {
        var wire = WireRequest()
        func ref(_ name: String) -> WireVMRef {
            var ref = WireVMRef()
            ref.vm = name
            return ref
        }
        switch request {
        case .create(let spec):
            let create: WireCreateVM
            do {
                create = try WireCreateVM(spec: spec)
            } catch {
                throw .node(NodeServiceError(code: .invalidSpec, message: "cannot encode the specification: \(error)"))
            }
            wire.op = .create(create)
        case .start(let name): wire.op = .start(ref(name))
        case .stop(let name):
            var stop = WireStopVM()
            stop.vm = name
            wire.op = .stop(stop)
        case .pause(let name): wire.op = .pause(ref(name))
        case .resume(let name): wire.op = .resume(ref(name))
        case .reboot(let name): wire.op = .reboot(ref(name))
        case .powerButton(let name): wire.op = .powerButton(ref(name))
        case .delete(let name): wire.op = .delete(ref(name))
        case .info(let name): wire.op = .info(ref(name))
        case .list: wire.op = .list(WireListVMs())
        case .console(let name, let offset, let follow):
            var tail = WireConsoleTail()
            tail.vm = name
            tail.offset = UInt64(clamping: max(0, offset))
            tail.follow = follow
            wire.op = .consoleTail(tail)
        }
        return wire
    }

    private static func call(_ connection: WireConnection, _ request: WireRequest,
                             timeout: Duration) async throws(NodeClientError) -> WireResponse {
        do {
            return try await connection.call(request, timeout: timeout)
        } catch let error as WireError {
            switch error {
            case .remote(let response): throw .node(NodeServiceError(response))
            case .timedOut(let after): throw .timeout(after)
            default: throw .wire(error)
            }
        } catch {
            throw .wire(.connectionClosed(reason: "\(error)"))
        }
    }

    /// Dials the node's socket and runs the handshake.
    private func connect() throws(NodeClientError) -> WireConnection {
        let path = socketPath
        return try Self.blocking { () async throws(NodeClientError) -> WireConnection in
            let dialer = WireDialer(endpoint: .unix(path: path), security: .insecurePlaintext,
                                    local: WireLocalIdentity(role: .admin, name: "qarax-node-cli",
                                                             softwareVersion: NodeVersion.current),
                                    expectedPeerRoles: [.node])
            do {
                return try await dialer.connect()
            } catch {
                throw .connect(path: path, reason: "\(error)")
            }
        }
    }

    private func close(_ connection: WireConnection) {
        _ = try? Self.blocking { () async throws(NodeClientError) in await connection.close() }
    }

    /// Runs `body` on the cooperative pool and blocks this thread until it is done.
    private static func blocking<T: Sendable>(
        _ body: @escaping @Sendable () async throws(NodeClientError) -> T
    ) throws(NodeClientError) -> T {
        let outcome = Mutex<Result<T, NodeClientError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let result: Result<T, NodeClientError>
            do throws(NodeClientError) {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        while true {
            done.wait()
            if let result = outcome.withLock({ $0 }) { return try result.get() }
        }
    }
}
