public import NIOCore
import Synchronization

/// Answers the peer's requests. The node agent and the node's local socket implement this.
public protocol WireRequestHandler: Sendable {
    /// Handles one request; a thrown error goes back as an error response through
    /// `WireErrorMapping.response(for:)`. Requests are handled concurrently and answered out of order.
    func handle(_ request: WireRequest, from peer: WirePeer) async throws -> WireResponse
}

/// An established connection after the handshake: calls, answers, events, heartbeats.
public final class WireConnection: Sendable {
    /// Who is on the other end.
    public let peer: WirePeer
    /// Events the peer pushes, in order; finishes when the connection closes. One consumer only.
    public let events: AsyncStream<WireEvent>
    let channel: any Channel
    private let handler: NIOLoopBound<WireConnectionHandler>
    private let requests: AsyncStream<WireIncomingRequest>
    private let configuration: WireConnectionConfiguration
    private let nextID = Atomic<UInt64>(1)

    init(peer: WirePeer, channel: any Channel, handler: NIOLoopBound<WireConnectionHandler>,
         requests: AsyncStream<WireIncomingRequest>, events: AsyncStream<WireEvent>,
         configuration: WireConnectionConfiguration) {
        self.peer = peer
        self.channel = channel
        self.handler = handler
        self.requests = requests
        self.events = events
        self.configuration = configuration
    }

    /// The peer's address, when the transport has one.
    public var remoteAddress: SocketAddress? { channel.remoteAddress }

    /// Sends `request` and waits for its answer. Waits for an in-flight slot when the limit is
    /// reached (bounded by `maxQueuedCalls`, then `.overloaded`).
    /// - Throws: `WireError.remote` with the peer's error, `.timedOut`, `.overloaded`,
    ///   `.connectionClosed`, or `CancellationError`.
    public func call(_ request: WireRequest, timeout: Duration? = nil) async throws -> WireResponse {
        let id = nextID.add(1, ordering: .relaxed).oldValue
        let timeout = timeout ?? configuration.defaultCallTimeout
        let promise = channel.eventLoop.makePromise(of: WireResponse.self)
        let handler = self.handler
        channel.eventLoop.execute { handler.value.call(id: id, request, timeout: timeout, promise: promise) }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            promise.futureResult.eventLoop.execute { handler.value.cancel(id: id) }
        }
    }

    /// Installs `tap`, run on the connection's event loop for every event from now on, before it
    /// is queued on ``events``: when it returns true the event is consumed there and never queued.
    /// For events whose handling is a few memory writes (liveness reports at scale), this saves
    /// the hop to a task per event. Keep it short and non-blocking.
    public func tapEvents(_ tap: @escaping @Sendable (WireEvent) -> Bool) async {
        let handler = self.handler
        try? await channel.eventLoop.submit { handler.value.eventTap = tap }.get()
    }

    /// Pushes an event to the peer; returns once it is written (the caller feels back-pressure).
    public func push(_ event: WireEvent) async throws {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let handler = self.handler
        channel.eventLoop.execute { handler.value.push(event, promise: promise) }
        try await promise.futureResult.get()
    }

    /// Serves the peer's requests with `handler` until the connection closes. Each request runs in
    /// its own child task; at most `maxIncomingInFlight` at once (reads stop at the limit). Handlers
    /// still running when the connection closes are cancelled. Call it at most once per connection.
    public func serve(_ handler: some WireRequestHandler) async {
        let peer = self.peer
        await withDiscardingTaskGroup { group in
            for await incoming in requests {
                group.addTask {
                    let answer: WireMessage
                    if incoming.request.op == nil {
                        answer = .error(WireErrorMapping.response(for: WireUnsupportedOperation(
                            operation: "unknown (a field this side does not know)")))
                    } else {
                        do {
                            answer = .response(try await handler.handle(incoming.request, from: peer))
                        } catch {
                            answer = .error(WireErrorMapping.response(for: error))
                        }
                    }
                    self.respond(id: incoming.id, answer)
                }
            }
            group.cancelAll()
        }
    }

    private func respond(id: UInt64, _ answer: WireMessage) {
        let handler = self.handler
        channel.eventLoop.execute { handler.value.respond(id: id, answer) }
    }

    /// Closes the connection with a Goodbye; `reason` tells the peer why when it is an error.
    public func close(reason: WireErrorResponse? = nil) async {
        let handler = self.handler
        channel.eventLoop.execute { handler.value.close(reason: reason) }
        try? await channel.closeFuture.get()
    }

    /// Waits until the connection is closed and returns why.
    @discardableResult
    public func closed() async -> WireError {
        try? await channel.closeFuture.get()
        let handler = self.handler
        let reason = try? await channel.eventLoop.submit { handler.value.closeReason }.get()
        return (reason ?? nil) ?? .connectionClosed(reason: "closed")
    }
}
