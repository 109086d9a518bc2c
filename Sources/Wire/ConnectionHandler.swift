import Foundation
import NIOCore
import NIOSSL
import X509

/// How the handshake runs on this channel.
enum WireHandshakeRole: Sendable {
    /// Sends `hello`, then checks the HelloAck with `verify`.
    case dialer(hello: WireHello, verify: @Sendable (WireHelloAck, WireCertificateIdentity?) throws -> WirePeer)
    /// Waits for a Hello and answers with `accept`'s HelloAck.
    case acceptor(accept: @Sendable (WireHello, WireCertificateIdentity?) throws -> (ack: WireHelloAck, peer: WirePeer))
}

/// The protocol state of one connection, confined to its event loop: handshake, request ids and
/// timeouts, in-flight limits (reads stop at the incoming limit), heartbeats, events, close reasons.
final class WireConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = WireFrame
    typealias OutboundIn = WireFrame
    typealias OutboundOut = WireFrame

    private enum Phase { case idle, handshaking, open, closed }

    private struct Pending {
        var promise: EventLoopPromise<WireResponse>
        var timeout: Scheduled<Void>?
    }

    private struct Queued {
        var id: UInt64
        var request: WireRequest
        var promise: EventLoopPromise<WireResponse>
        var deadline: NIODeadline
        var timeoutAfter: Duration
        var timeout: Scheduled<Void>?
    }

    private let configuration: WireConnectionConfiguration
    private let role: WireHandshakeRole
    let established: EventLoopPromise<WirePeer>
    private let requests: AsyncStream<WireIncomingRequest>.Continuation
    private let events: AsyncStream<WireEvent>.Continuation

    private var context: ChannelHandlerContext?
    private var phase = Phase.idle
    private(set) var closeReason: WireError?
    private var pending: [UInt64: Pending] = [:]
    private var queue = CircularBuffer<Queued>()
    private var incomingInFlight = 0
    private var readWithheld = false
    private var lastInbound = NIODeadline.now()
    private var heartbeat: RepeatedTask?
    /// When the oldest unanswered heartbeat went out (acks come back in order on one stream).
    private var heartbeatSentAt: NIODeadline?
    /// Consumes events on the event loop before they are queued (see ``WireConnection/tapEvents(_:)``).
    var eventTap: (@Sendable (WireEvent) -> Bool)?
    private var handshakeTimeout: Scheduled<Void>?
    private var eventSequence: UInt64 = 0

    init(configuration: WireConnectionConfiguration, role: WireHandshakeRole, established: EventLoopPromise<WirePeer>,
         requests: AsyncStream<WireIncomingRequest>.Continuation, events: AsyncStream<WireEvent>.Continuation) {
        self.configuration = configuration
        self.role = role
        self.established = established
        self.requests = requests
        self.events = events
    }

    // MARK: lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard phase == .idle else { return }
        phase = .handshaking
        lastInbound = .now()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        handshakeTimeout = context.eventLoop.scheduleTask(in: .init(configuration.handshakeTimeout)) {
            bound.value.handshakeTimedOut()
        }
        if case .dialer(let hello, _) = role {
            send(WireEnvelope(.hello(hello)))
        }
    }

    private func handshakeTimedOut() {
        if phase == .handshaking {
            fail(.protocolViolation("no handshake within \(configuration.handshakeTimeout)"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown(reason: closeReason ?? .connectionClosed(reason: "the peer closed the connection"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown(reason: closeReason ?? .connectionClosed(reason: "the connection was torn down"))
        self.context = nil
    }

    private func tearDown(reason: WireError) {
        guard phase != .closed else { return }
        phase = .closed
        if closeReason == nil { closeReason = reason }
        handshakeTimeout?.cancel()
        heartbeat?.cancel()
        established.fail(reason)
        let calls = pending
        pending.removeAll()
        for call in calls.values {
            call.timeout?.cancel()
            call.promise.fail(reason)
        }
        while let queued = queue.popFirst() {
            queued.timeout?.cancel()
            queued.promise.fail(reason)
        }
        requests.finish()
        events.finish()
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        lastInbound = .now()
        let envelope: WireEnvelope
        do {
            envelope = try WireEnvelope(frame: frame)
        } catch {
            fail(.framing(error))
            return
        }
        switch phase {
        case .handshaking: handshake(envelope, context: context)
        case .open: dispatch(envelope, context: context)
        case .idle, .closed: break
        }
    }

    private func handshake(_ envelope: WireEnvelope, context: ChannelHandlerContext) {
        do {
            switch (role, envelope.message) {
            case (.acceptor(let accept), .hello(let hello)):
                let (ack, peer) = try accept(hello, certificateIdentity(context: context))
                send(WireEnvelope(.helloAck(ack)))
                open(peer: peer, context: context)
            case (.dialer(_, let verify), .helloAck(let ack)):
                let peer = try verify(ack, certificateIdentity(context: context))
                open(peer: peer, context: context)
            case (_, .goodbye(let goodbye)):
                closeReason = goodbye.hasReason ? .remote(goodbye.reason) : .connectionClosed(reason: "the peer said goodbye")
                context.close(promise: nil)
            case (_, let message):
                throw WireError.protocolViolation("\(message.type) frame before the handshake completed")
            }
        } catch let error as WireError {
            fail(error)
        } catch {
            fail(.protocolViolation("handshake: \(error)"))
        }
    }

    private func open(peer: WirePeer, context: ChannelHandlerContext) {
        phase = .open
        handshakeTimeout?.cancel()
        if let interval = configuration.heartbeatInterval {
            let limit = TimeAmount(interval) * configuration.missedHeartbeatLimit
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            heartbeat = context.eventLoop.scheduleRepeatedTask(initialDelay: .init(interval), delay: .init(interval)) { _ in
                bound.value.heartbeatTick(limit: limit, interval: TimeAmount(interval))
            }
        }
        established.succeed(peer)
    }

    /// Declares the peer dead after `limit` of silence, else sends a heartbeat.
    /// Whether a heartbeat is due after `silent` without inbound frames (a tenth of the interval
    /// of slack: the tick and the last frame are never exactly one interval apart).
    static func heartbeatDue(silent: TimeAmount, interval: TimeAmount) -> Bool {
        silent * 10 >= interval * 9
    }

    /// A heartbeat goes out only when nothing came in for a whole interval: a peer that is
    /// sending already proves both directions work (its frames arrive; our acks or answers reach
    /// it), and the quiet side's heartbeat, answered, keeps the chatty side's inbound alive.
    private func heartbeatTick(limit: TimeAmount, interval: TimeAmount) {
        guard phase == .open else { return }
        let silent = NIODeadline.now() - lastInbound
        if silent >= limit {
            fail(.peerUnresponsive(silentFor: Duration.nanoseconds(silent.nanoseconds)))
        } else if Self.heartbeatDue(silent: silent, interval: interval) {
            var beat = WireHeartbeat()
            beat.unixMs = Self.unixMilliseconds()
            if heartbeatSentAt == nil { heartbeatSentAt = .now() }
            send(WireEnvelope(.heartbeat(beat)))
        }
    }

    private func dispatch(_ envelope: WireEnvelope, context: ChannelHandlerContext) {
        switch envelope.message {
        case .request(let request):
            guard incomingInFlight < configuration.maxIncomingInFlight else {
                send(WireEnvelope(requestID: envelope.requestID, .error(WireErrorMapping.make(
                    .resourceExhausted, "too many requests in flight (limit \(configuration.maxIncomingInFlight))"))))
                return
            }
            incomingInFlight += 1
            requests.yield(WireIncomingRequest(id: envelope.requestID, request: request))
        case .response(let response):
            complete(envelope.requestID, with: .success(response))
        case .error(let error):
            complete(envelope.requestID, with: .failure(WireError.remote(error)))
        case .event(let event):
            if let eventTap, eventTap(event) { return }
            if case .dropped = events.yield(event) {
                fail(.protocolViolation("events arrive faster than they are consumed "
                                        + "(\(configuration.eventBufferSize) buffered)"))
            }
        case .heartbeat(let beat):
            var ack = WireHeartbeatAck()
            ack.unixMs = beat.unixMs
            send(WireEnvelope(.heartbeatAck(ack)))
        case .heartbeatAck:
            if let sent = heartbeatSentAt {
                heartbeatSentAt = nil
                configuration.heartbeatRoundTrip?(Duration.nanoseconds((NIODeadline.now() - sent).nanoseconds))
            }
        case .goodbye(let goodbye):
            closeReason = goodbye.hasReason ? .remote(goodbye.reason) : .connectionClosed(reason: "the peer said goodbye")
            context.close(promise: nil)
        case .hello, .helloAck:
            fail(.protocolViolation("\(envelope.message.type) frame after the handshake"))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case let error as WireFrameError: fail(.framing(error))
        case let error as WireError: fail(error)
        case let error as NIOSSLError: fail(.tls("\(error)"))
        case let error as BoringSSLError: fail(.tls("\(error)"))
        default: fail(.connectionClosed(reason: "\(error)"))
        }
    }

    // MARK: outbound

    func read(context: ChannelHandlerContext) {
        if incomingInFlight >= configuration.maxIncomingInFlight {
            readWithheld = true
        } else {
            context.read()
        }
    }

    /// Starts a call; the future completes with the answer, a timeout or the connection's end.
    func call(id: UInt64, _ request: WireRequest, timeout: Duration, promise: EventLoopPromise<WireResponse>) {
        guard phase == .open, let context else {
            promise.fail(closeReason ?? .connectionClosed(reason: "the connection is not open"))
            return
        }
        let deadline = NIODeadline.now() + .init(timeout)
        if pending.count < configuration.maxOutgoingInFlight {
            transmit(id: id, request, deadline: deadline, timeout: timeout, promise: promise, context: context)
        } else if queue.count < configuration.maxQueuedCalls {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let task = context.eventLoop.scheduleTask(deadline: deadline) {
                bound.value.queuedCallTimedOut(id: id, timeout: timeout)
            }
            queue.append(Queued(id: id, request: request, promise: promise, deadline: deadline, timeoutAfter: timeout,
                                timeout: task))
        } else {
            promise.fail(WireError.overloaded(inFlightLimit: configuration.maxOutgoingInFlight))
        }
    }

    private func queuedCallTimedOut(id: UInt64, timeout: Duration) {
        if let index = queue.firstIndex(where: { $0.id == id }) {
            queue.remove(at: index).promise.fail(WireError.timedOut(after: timeout))
        }
    }

    private func callTimedOut(id: UInt64, timeout: Duration) {
        if let call = pending.removeValue(forKey: id) {
            call.promise.fail(WireError.timedOut(after: timeout))
            drainQueue()
        }
    }

    /// Fails a call its caller gave up on.
    func cancel(id: UInt64) {
        if let call = pending.removeValue(forKey: id) {
            call.timeout?.cancel()
            call.promise.fail(CancellationError())
            drainQueue()
        } else if let index = queue.firstIndex(where: { $0.id == id }) {
            let queued = queue.remove(at: index)
            queued.timeout?.cancel()
            queued.promise.fail(CancellationError())
        }
    }

    private func transmit(id: UInt64, _ request: WireRequest, deadline: NIODeadline, timeout: Duration,
                          promise: EventLoopPromise<WireResponse>, context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: deadline) {
            bound.value.callTimedOut(id: id, timeout: timeout)
        }
        pending[id] = Pending(promise: promise, timeout: task)
        if let error = send(WireEnvelope(requestID: id, .request(request))) {
            complete(id, with: .failure(error))
        }
    }

    private func complete(_ id: UInt64, with result: Result<WireResponse, any Error>) {
        guard let call = pending.removeValue(forKey: id) else { return }
        call.timeout?.cancel()
        call.promise.completeWith(result)
        drainQueue()
    }

    private func drainQueue() {
        guard let context else { return }
        while pending.count < configuration.maxOutgoingInFlight, let next = queue.popFirst() {
            next.timeout?.cancel()
            if next.deadline <= .now() {
                next.promise.fail(WireError.timedOut(after: next.timeoutAfter))
                continue
            }
            transmit(id: next.id, next.request, deadline: next.deadline, timeout: next.timeoutAfter,
                     promise: next.promise, context: context)
        }
    }

    /// Answers a peer request and frees its in-flight slot.
    func respond(id: UInt64, _ message: WireMessage) {
        guard incomingInFlight > 0 else { return }
        incomingInFlight -= 1
        if phase == .open, let error = send(WireEnvelope(requestID: id, message)) {
            send(WireEnvelope(requestID: id, .error(WireErrorMapping.make(
                .resourceExhausted, "the answer cannot be sent: \(error)"))))
        }
        if readWithheld, incomingInFlight < configuration.maxIncomingInFlight, let context {
            readWithheld = false
            context.read()
        }
    }

    /// Sends an event with the next sequence number; the future completes once it is written.
    func push(_ event: WireEvent, promise: EventLoopPromise<Void>) {
        guard phase == .open else {
            promise.fail(closeReason ?? .connectionClosed(reason: "the connection is not open"))
            return
        }
        var event = event
        eventSequence += 1
        event.sequence = eventSequence
        if event.unixMs == 0 { event.unixMs = Self.unixMilliseconds() }
        event.sentUnixNs = WireClock.unixNanoseconds()
        send(WireEnvelope(.event(event)), promise: promise)
    }

    /// Closes in order: a Goodbye (with `reason` when it is an error) and the close.
    func close(reason: WireErrorResponse?) {
        guard phase != .closed, let context else { return }
        var goodbye = WireGoodbye()
        if let reason { goodbye.reason = reason }
        if closeReason == nil { closeReason = .connectionClosed(reason: "closed by this side") }
        send(WireEnvelope(.goodbye(goodbye)))
        context.close(promise: nil)
    }

    /// Closes on an error, telling the peer why first.
    private func fail(_ error: WireError) {
        guard phase != .closed, let context else { return }
        if closeReason == nil { closeReason = error }
        if context.channel.isActive {
            var goodbye = WireGoodbye()
            goodbye.reason = WireErrorMapping.response(for: error)
            send(WireEnvelope(.goodbye(goodbye)))
        }
        context.close(promise: nil)
    }

    /// Writes one frame. A message above the frame limit is not sent (the peer would close the
    /// connection on it): the error goes to `promise` and is returned.
    @discardableResult
    private func send(_ envelope: WireEnvelope, promise: EventLoopPromise<Void>? = nil) -> (any Error)? {
        guard let context else {
            let error = closeReason ?? .connectionClosed(reason: "the connection is closed")
            promise?.fail(error)
            return error
        }
        do {
            let frame = try envelope.frame(allocator: context.channel.allocator)
            let size = WireFormat.headerSize + frame.payload.readableBytes
            guard size <= configuration.maxFrameSize else {
                throw WireFrameError.oversized(frameSize: size, limit: configuration.maxFrameSize)
            }
            context.writeAndFlush(wrapOutboundOut(frame), promise: promise)
            return nil
        } catch {
            promise?.fail(error)
            return error
        }
    }

    private func certificateIdentity(context: ChannelHandlerContext) -> WireCertificateIdentity? {
        guard let tls = try? context.pipeline.syncOperations.handler(type: NIOSSLHandler.self),
              let certificate = tls.peerCertificate,
              let der = try? certificate.toDERBytes(),
              let parsed = try? Certificate(derEncoded: der)
        else { return nil }
        return WireCertificateIdentity(parsed)
    }

    static func unixMilliseconds() -> UInt64 {
        WireClock.unixNanoseconds() / 1_000_000
    }

}

/// The wall clock events are stamped with.
public enum WireClock {
    /// Nanoseconds since the epoch (`clock_gettime(CLOCK_REALTIME)`, not a `Double` of seconds).
    public static func unixNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(max(0, now.tv_sec)) &* 1_000_000_000 &+ UInt64(max(0, now.tv_nsec))
    }
}

extension WireCertificateIdentity {
    init(_ certificate: Certificate) {
        var commonName: String?
        var unit: String?
        for rdn in certificate.subject {
            for attribute in rdn {
                if attribute.type == .RDNAttributeType.commonName { commonName = "\(attribute.value)" }
                if attribute.type == .RDNAttributeType.organizationalUnitName { unit = "\(attribute.value)" }
            }
        }
        var dnsNames: [String] = []
        if let san = try? certificate.extensions.subjectAlternativeNames {
            for name in san {
                if case .dnsName(let dns) = name { dnsNames.append(dns) }
            }
        }
        self.init(commonName: commonName, organizationalUnit: unit, dnsNames: dnsNames)
    }
}
