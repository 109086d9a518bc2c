import Foundation
import NIOCore
import NIOPosix
import Synchronization
import VMModel
@testable import Wire

/// Fails when `body` has not finished within `seconds`: the deadline of every await in these tests.
func withDeadline<T: Sendable>(_ seconds: Int = 20, _ what: String = "condition",
                               _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))  // allowed: deadline timer, not a wait
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw DeadlineExceeded(what: what, seconds: seconds)
        }
        return value
    }
}

struct DeadlineExceeded: Error, CustomStringConvertible {
    var what: String
    var seconds: Int
    var description: String { "\(what) not reached within \(seconds) s" }
}

/// Named one-shot gates that request handlers wait on; waiting ends on cancellation too.
final class Gates: Sendable {
    private let streams = Mutex<[String: (AsyncStream<Void>, AsyncStream<Void>.Continuation)]>([:])

    private func pair(_ name: String) -> (AsyncStream<Void>, AsyncStream<Void>.Continuation) {
        streams.withLock { streams in
            if let pair = streams[name] { return pair }
            let pair = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            streams[name] = pair
            return pair
        }
    }

    func wait(_ name: String) async {
        for await _ in pair(name).0 { return }
    }

    func open(_ name: String) {
        pair(name).1.yield(())
    }
}

/// A node-side handler for tests: `info` answers at once, `start "slow-X"` opens gate arrived-X and waits for gate X,
/// `start "open-X"` opens gate X, `delete` of "fail" throws a spec problem, `pause` never answers, `list` answers 50 VMs.
struct TestHandler: WireRequestHandler {
    let gates: Gates

    func handle(_ request: WireRequest, from peer: WirePeer) async throws -> WireResponse {
        switch request.op {
        case .info(let ref), .start(let ref):
            if ref.vm.hasPrefix("slow-") {
                let gate = String(ref.vm.dropFirst(5))
                gates.open("arrived-" + gate)
                await gates.wait(gate)
            }
            if ref.vm.hasPrefix("open-") { gates.open(String(ref.vm.dropFirst(5))) }
            var status = Samples.vmStatus
            status.name = ref.vm
            return Samples.response(.vm(status))
        case .delete(let ref) where ref.vm == "fail":
            throw SpecProblem(field: "name", reason: "\"fail\" is not a VM on this node")
        case .pause:
            await gates.wait("never")
            throw CancellationError()
        case .nodeInfo:
            return Samples.response(.node(Samples.inventory))
        case .list:
            var list = WireVMList()
            list.vms = Array(repeating: Samples.vmStatus, count: 50)
            return Samples.response(.vms(list))
        default:
            throw WireUnsupportedOperation(operation: "\(String(describing: request.op))")
        }
    }
}

/// Collects values from concurrent callbacks into a stream the test awaits.
final class Collector<T: Sendable>: Sendable {
    let stream: AsyncStream<T>
    private let continuation: AsyncStream<T>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: T.self, bufferingPolicy: .bufferingNewest(256))
    }

    func add(_ value: T) { continuation.yield(value) }

    /// The next value, within the deadline.
    func next(_ what: String = "value") async throws -> T {
        let stream = self.stream
        return try await withDeadline(20, what) {
            for await value in stream { return value }
            throw DeadlineExceeded(what: "\(what) (stream ended)", seconds: 0)
        }
    }
}

/// A running listener and the things it saw.
struct TestServer: Sendable {
    let listener: WireListener
    let refused: Collector<WireError>
    let closed: Collector<WireError>
    let connections: Collector<WireConnection>
    let warnings: Collector<String>

    var endpoint: WireEndpoint {
        get throws {
            guard let port = listener.port else { throw DeadlineExceeded(what: "bound port", seconds: 0) }
            return .tcp(host: "127.0.0.1", port: port)
        }
    }
}

let controlIdentity = WireLocalIdentity(role: .control, name: "qarax-control", capabilities: ["events", "hotplug"],
                                        softwareVersion: "0.1.0")
let nodeIdentity = WireLocalIdentity(role: .node, name: "node-1", capabilities: ["events"], node: Samples.inventory,
                                     softwareVersion: "0.1.0")

/// Runs a listener that serves `TestHandler` for the duration of `body`.
func withServer<T: Sendable>(
    endpoint: WireEndpoint = .tcp(host: "127.0.0.1", port: 0),
    security: WireSecurity = .insecurePlaintext,
    local: WireLocalIdentity = controlIdentity,
    acceptedRoles: [WirePeerRole] = [.node, .admin],
    configuration: WireConnectionConfiguration = .init(),
    gates: Gates = Gates(),
    _ body: @escaping @Sendable (TestServer) async throws -> T
) async throws -> T {
    let warnings = Collector<String>()
    let listener = try await WireListener.bind(endpoint: endpoint, security: security, local: local,
                                               acceptedRoles: acceptedRoles, configuration: configuration,
                                               warn: { warnings.add($0) })
    let server = TestServer(listener: listener, refused: Collector(), closed: Collector(), connections: Collector(),
                            warnings: warnings)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            try await listener.run(onRefused: { server.refused.add($0) }) { connection in
                server.connections.add(connection)
                await connection.serve(TestHandler(gates: gates))
                if Task.isCancelled { await connection.close() }
                server.closed.add(await connection.closed())
            }
        }
        do {
            let result = try await body(server)
            await listener.close()
            try await group.waitForAll()
            return result
        } catch {
            await listener.close()
            group.cancelAll()
            throw error
        }
    }
}

func dialer(_ endpoint: WireEndpoint, security: WireSecurity = .insecurePlaintext,
            local: WireLocalIdentity = nodeIdentity, configuration: WireConnectionConfiguration = .init(),
            warn: @escaping @Sendable (String) -> Void = { _ in }) -> WireDialer {
    WireDialer(endpoint: endpoint, security: security, local: local, expectedPeerRoles: [.control, .node],
               configuration: configuration, warn: warn)
}

/// A raw TCP peer that writes `bytes` and returns everything it reads until the server closes.
func rawExchange(port: Int, _ bytes: [UInt8], halfClose: Bool = false) async throws -> [WireFrame] {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelOption(.allowRemoteHalfClosure, value: true)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                    wrappingChannelSynchronously: channel,
                    configuration: .init(isOutboundHalfClosureEnabled: true))
            }
        }
    var received = ByteBuffer()
    try await channel.executeThenClose { inbound, outbound in
        try await outbound.write(ByteBuffer(bytes: bytes))
        if halfClose { outbound.finish() }
        for try await chunk in inbound { received.writeImmutableBuffer(chunk) }
    }
    var frames: [WireFrame] = []
    while let frame = try WireFrameDecoder().parse(&received) { frames.append(frame) }
    return frames
}

/// The Goodbye among `frames`, decoded.
func goodbye(in frames: [WireFrame]) throws -> WireGoodbye? {
    for frame in frames where frame.type == .goodbye {
        if case .goodbye(let goodbye) = try WireEnvelope(frame: frame).message { return goodbye }
    }
    return nil
}
