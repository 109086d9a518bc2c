import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// One keep-alive HTTP/1.1 connection, one request at a time: the load generator's client.
final class HTTPConnection: Sendable {
    private let channel: any Channel
    private let collector: NIOLoopBound<ResponseCollector>

    private init(channel: any Channel, collector: NIOLoopBound<ResponseCollector>) {
        self.channel = channel
        self.collector = collector
    }

    static func connect(host: String, port: Int, group: any EventLoopGroup) async throws -> HTTPConnection {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector())
                }
            }
            .connect(host: host, port: port).get()
        let collector = try await channel.pipeline.handler(type: ResponseCollector.self).map {
            NIOLoopBound($0, eventLoop: channel.eventLoop)
        }.get()
        return HTTPConnection(channel: channel, collector: collector)
    }

    /// Sends one request and returns the status and body.
    func send(_ method: HTTPMethod, _ path: String, headers: [(String, String)], body: ByteBuffer?) async throws -> (Int, ByteBuffer) {
        let promise = channel.eventLoop.makePromise(of: (Int, ByteBuffer).self)
        let collector = self.collector
        let channel = self.channel
        channel.eventLoop.execute {
            collector.value.expect(promise)
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
            head.headers.add(name: "Host", value: "127.0.0.1")
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            head.headers.add(name: "Content-Length", value: "\(body?.readableBytes ?? 0)")
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        return try await promise.futureResult.get()
    }

    func close() async {
        try? await channel.close()
    }
}

/// Gathers one response at a time and completes the waiting request's promise.
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private var waiting: EventLoopPromise<(Int, ByteBuffer)>?
    private var status = 0
    private var body = ByteBuffer()

    func expect(_ promise: EventLoopPromise<(Int, ByteBuffer)>) {
        waiting = promise
        status = 0
        body.clear()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): status = Int(head.status.code)
        case .body(var part): body.writeBuffer(&part)
        case .end:
            let promise = waiting
            waiting = nil
            promise?.succeed((status, body))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        waiting?.fail(ChannelError.ioOnClosedChannel)
        waiting = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        waiting?.fail(error)
        waiting = nil
        context.close(promise: nil)
    }
}

/// Open-loop API load: requests are due at a fixed rate, and each one's latency counts from when
/// it was due (a slow answer delays the next request of its user, and that delay is counted, so
/// queueing is not hidden). Each user walks VMs through create → start → stop → delete.
public struct APILoad: Sendable {
    public var host: String
    public var port: Int
    public var token: String
    /// Requests per second, all routes together.
    public var rate: Double
    public var duration: Duration
    /// Concurrent keep-alive connections.
    public var users: Int
    /// Prefix of the VM names, unique per run.
    public var namePrefix: String

    public init(host: String, port: Int, token: String, rate: Double, duration: Duration, users: Int, namePrefix: String) {
        self.host = host
        self.port = port
        self.token = token
        self.rate = rate
        self.duration = duration
        self.users = users
        self.namePrefix = namePrefix
    }

    /// What the load saw, per route.
    public struct Result: Sendable {
        /// Route → latencies in seconds, from due time to answer.
        public var latencies: [String: [Double]] = [:]
        /// Route → answers that were not 2xx, or failed.
        public var errors: [String: Int] = [:]
        public var firstError: String?
        public var sent = 0
        /// Due requests not sent by twice the duration (the server fell that far behind).
        public var dropped = 0
        public var elapsed: Double = 0
    }

    private final class Outcome: Sendable {
        let state = Mutex(Result())
    }

    public func run() async throws -> Result {
        let group = MultiThreadedEventLoopGroup.singleton
        var connections: [HTTPConnection] = []
        for _ in 0..<users { connections.append(try await HTTPConnection.connect(host: host, port: port, group: group)) }
        let schedule = Schedule(start: .now + .milliseconds(50), interval: 1 / rate, end: duration)
        let outcome = Outcome()
        let load = self
        let started = ContinuousClock.now
        await withTaskGroup(of: Void.self) { tasks in
            for (user, connection) in connections.enumerated() {
                tasks.addTask { await load.user(user, connection: connection, schedule: schedule, outcome: outcome) }
            }
        }
        for connection in connections { await connection.close() }
        var result = outcome.state.withLock { $0 }
        result.dropped = max(0, schedule.count - result.sent)
        result.elapsed = ProcessSample.seconds(ContinuousClock.now - started)
        return result
    }

    private func user(_ user: Int, connection: HTTPConnection, schedule: Schedule, outcome: Outcome) async {
        let headers = [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")]
        var serial = 0
        var vm: String?
        var step = 0
        while let due = schedule.next() {
            try? await Task.sleep(until: due, clock: .continuous)
            let (route, method, path, body): (String, HTTPMethod, String, ByteBuffer?)
            switch (step, vm) {
            case (_, nil):
                serial += 1
                let name = "\(namePrefix)-\(user)-\(serial)"
                route = "POST /v1/vms"
                (method, path, body) = (.POST, "/v1/vms", ByteBuffer(string: Self.createBody(name)))
            case (1, let id?): (route, method, path, body) = ("POST /v1/vms/{id}/start", .POST, "/v1/vms/\(id)/start", nil)
            case (2, let id?): (route, method, path, body) = ("POST /v1/vms/{id}/stop", .POST, "/v1/vms/\(id)/stop", nil)
            case (3, let id?): (route, method, path, body) = ("GET /v1/vms/{id}", .GET, "/v1/vms/\(id)", nil)
            case (_, let id?): (route, method, path, body) = ("DELETE /v1/vms/{id}", .DELETE, "/v1/vms/\(id)", nil)
            }
            var ok = false
            var failure: String?
            do {
                let (status, answer) = try await connection.send(method, path, headers: headers, body: body)
                ok = (200..<300).contains(status)
                if !ok { failure = "\(route): HTTP \(status) \(String(buffer: answer).prefix(300))" }
                if ok && step == 0 { vm = Self.vmID(answer) }
            } catch {
                failure = "\(route): \(error)"
            }
            let latency = ProcessSample.seconds(ContinuousClock.now - due)
            outcome.state.withLock { result in
                result.sent += 1
                result.latencies[route, default: []].append(latency)
                if let failure {
                    result.errors[route, default: 0] += 1
                    if result.firstError == nil { result.firstError = failure }
                }
            }
            if ok && vm != nil && step < 4 {
                step += 1
            } else {
                vm = nil
                step = 0
            }
        }
    }

    static func createBody(_ name: String) -> String {
        #"{"spec":{"name":"\#(name)","cpus":{"boot_vcpus":1},"memory":{"size":"256M"},"payload":{"kernel":"/var/lib/qarax/vmlinux"}}}"#
    }

    /// The VM id of a `POST /v1/vms` answer (`{"vm":{"id":…}}`).
    static func vmID(_ body: ByteBuffer) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
              let vm = object["vm"] as? [String: Any] else { return nil }
        return vm["id"] as? String
    }
}

/// Due times at a fixed interval, handed out once each, until `end` after the start.
/// A server that cannot keep up would otherwise stretch the run without bound: requests still
/// unsent at twice the duration are dropped and counted.
final class Schedule: Sendable {
    private let start: ContinuousClock.Instant
    private let interval: Double
    let count: Int
    private let cutoff: ContinuousClock.Instant
    private let issued = Atomic<Int>(0)

    init(start: ContinuousClock.Instant, interval: Double, end: Duration) {
        self.start = start
        self.interval = interval
        count = Int(ProcessSample.seconds(end) / interval)
        cutoff = start + end * 2
    }

    func next() -> ContinuousClock.Instant? {
        guard ContinuousClock.now < cutoff else { return nil }
        let index = issued.add(1, ordering: .relaxed).oldValue
        guard index < count else { return nil }
        return start + .seconds(Double(index) * interval)
    }
}
