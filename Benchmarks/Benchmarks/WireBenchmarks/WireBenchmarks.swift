// Wire codec throughput and RPC round trips over loopback, plaintext and TLS 1.3 (mutual auth),
// side by side with an echo of the same bytes on the same NIO stack. Run from Benchmarks/:
//   swift package --allow-writing-to-package-directory benchmark --target WireBenchmarks
import Benchmark
import ClusterPKI
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Wire

// MARK: messages

private func smallMessage() -> WireEnvelope {
    var request = WireRequest()
    var ref = WireVMRef()
    ref.vm = "web-01"
    request.op = .info(ref)
    return WireEnvelope(requestID: 42, .request(request))
}

private func vmStatus(_ index: Int) -> WireVMStatus {
    var status = WireVMStatus()
    status.id = "0b6c3f6e-\(index)"
    status.name = "vm-\(index)"
    status.state = .running
    status.vmmPid = UInt32(10_000 + index)
    status.backend = "cloud-hypervisor"
    status.stateSinceUnixMs = 1_700_000_000_000
    return status
}

/// A node's VM inventory report with 100 VMs: the largest message of a normal reconnect.
private func largeMessage() -> WireEnvelope {
    var report = WireVMInventoryReport()
    report.vms = (0..<100).map(vmStatus)
    var event = WireEvent()
    event.sequence = 1
    event.unixMs = 1_700_000_000_000
    event.kind = .inventory(report)
    return WireEnvelope(.event(event))
}

private func encoded(_ envelope: WireEnvelope, count: Int) -> ByteBuffer {
    var buffer = ByteBuffer()
    for _ in 0..<count {
        do { try envelope.write(to: &buffer) } catch { fatalError("benchmark encode: \(error)") }
    }
    return buffer
}

private let bytesPerMessage = BenchmarkMetric.custom("bytes per message", useScalingFactor: false)

// MARK: RPC fixtures

private struct InfoHandler: WireRequestHandler {
    func handle(_ request: WireRequest, from peer: WirePeer) async throws -> WireResponse {
        var response = WireResponse()
        if case .info(let ref) = request.op {
            var status = vmStatus(0)
            status.name = ref.vm
            response.result = .vm(status)
        }
        return response
    }
}

private let pkiDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("qx-wire-bench-\(getpid())").path

private func makePKI() throws {
    if FileManager.default.fileExists(atPath: pkiDirectory + "/ca.pem") { return }
    try ClusterPKI.initCA(dir: pkiDirectory)
    try ClusterPKI.issueControl(dir: pkiDirectory)
    try ClusterPKI.issueNode(name: "node-1", dir: pkiDirectory)
}

private func security(_ tls: Bool, _ name: String) -> WireSecurity {
    tls ? .mutualTLS(WireTLSFiles(directory: pkiDirectory, name: name)) : .insecurePlaintext
}

/// A node-role listener serving `InfoHandler` and the control daemon's connection to it.
private final class RPCFixture: Sendable {
    let listener: WireListener
    let connection: WireConnection
    let serving: Task<Void, any Error>

    init(tls: Bool) async throws {
        if tls { try makePKI() }
        let configuration = WireConnectionConfiguration(heartbeatInterval: nil)
        let listener = try await WireListener.bind(
            endpoint: .tcp(host: "127.0.0.1", port: 0), security: security(tls, "node-1"),
            local: WireLocalIdentity(role: .node, name: "node-1"), acceptedRoles: [.control],
            configuration: configuration, warn: { _ in })
        serving = Task { try await listener.run { connection in await connection.serve(InfoHandler()) } }
        guard let port = listener.port else { throw WireError.connectionClosed(reason: "no port") }
        let dialer = WireDialer(endpoint: .tcp(host: "127.0.0.1", port: port), security: security(tls, "qarax-control"),
                                local: WireLocalIdentity(role: .control, name: "qarax-control"),
                                expectedPeerRoles: [.node], configuration: configuration, warn: { _ in })
        connection = try await dialer.connect()
        self.listener = listener
    }
}

// MARK: echo baseline

private final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

/// An echo server and one client, plain or TLS, on the same event loop group as the RPCs.
private final class EchoFixture: @unchecked Sendable {
    // Invariant: used by one benchmark task at a time (package-benchmark runs iterations serially).
    let server: any Channel
    let client: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let payload: ByteBuffer

    init(tls: Bool, payload: ByteBuffer) async throws {
        var serverTLS: NIOSSLContext?
        var clientTLS: NIOSSLContext?
        if tls {
            try makePKI()
            let ca = try NIOSSLCertificate.fromPEMFile(pkiDirectory + "/ca.pem")
            var serverConfiguration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(pkiDirectory + "/qarax-control.pem").map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: pkiDirectory + "/qarax-control-key.pem", format: .pem)))
            serverConfiguration.minimumTLSVersion = .tlsv13
            serverConfiguration.trustRoots = .certificates(ca)
            serverConfiguration.certificateVerification = .noHostnameVerification
            var clientConfiguration = TLSConfiguration.makeClientConfiguration()
            clientConfiguration.minimumTLSVersion = .tlsv13
            clientConfiguration.trustRoots = .certificates(ca)
            clientConfiguration.certificateVerification = .noHostnameVerification
            clientConfiguration.certificateChain = try NIOSSLCertificate.fromPEMFile(pkiDirectory + "/node-1.pem").map { .certificate($0) }
            clientConfiguration.privateKey = .privateKey(try NIOSSLPrivateKey(file: pkiDirectory + "/node-1-key.pem", format: .pem))
            serverTLS = try NIOSSLContext(configuration: serverConfiguration)
            clientTLS = try NIOSSLContext(configuration: clientConfiguration)
        }
        let serverContext = serverTLS
        server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let serverContext { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverContext)) }
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = server.localAddress?.port else { throw WireError.connectionClosed(reason: "no port") }
        let clientContext = clientTLS
        client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let clientContext {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: clientContext, serverHostname: nil))
                    }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        inbound = client.inbound.makeAsyncIterator()
        outbound = client.outbound
        self.payload = payload
    }

    /// Writes the payload and waits until all of it came back.
    func roundTrip() async throws {
        try await outbound.write(payload)
        var received = 0
        while received < payload.readableBytes {
            guard let chunk = try await inbound.next() else { throw WireError.connectionClosed(reason: "echo closed") }
            received += chunk.readableBytes
        }
    }
}

// MARK: benchmarks

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput], timeUnits: .microseconds, warmupIterations: 10,
        maxDuration: .seconds(3), maxIterations: 100_000
    )

    let codec = Benchmark.Configuration(metrics: [.throughput, .wallClock, bytesPerMessage], timeUnits: .microseconds,
                                        scalingFactor: .kilo, maxDuration: .seconds(3))
    for (name, envelope) in [("small (info request)", smallMessage()), ("large (inventory of 100 VMs)", largeMessage())] {
        let frameBytes = encoded(envelope, count: 1).readableBytes
        Benchmark("encode \(name)", configuration: codec) { benchmark in
            var buffer = ByteBuffer()
            buffer.reserveCapacity(frameBytes * benchmark.scaledIterations.count)
            for _ in benchmark.scaledIterations {
                try envelope.write(to: &buffer)
            }
            blackHole(buffer)
            benchmark.measurement(bytesPerMessage, frameBytes)
        }
        let stream = encoded(envelope, count: 1000)
        Benchmark("decode \(name)", configuration: codec) { benchmark in
            var buffer = stream
            let decoder = WireFrameDecoder()
            for _ in benchmark.scaledIterations {
                guard let frame = try decoder.parse(&buffer) else { fatalError("benchmark: stream ran out") }
                blackHole(try WireEnvelope(frame: frame))
            }
            benchmark.measurement(bytesPerMessage, frameBytes)
        }
    }

    let rpc = Benchmark.Configuration(metrics: [.wallClock], timeUnits: .microseconds, warmupIterations: 200,
                                      maxDuration: .seconds(4), maxIterations: 40_000)
    let request = smallMessage()
    guard case .request(let info) = request.message else { return }
    let requestBytes = encoded(request, count: 1)
    for tls in [false, true] {
        let transport = tls ? "TLS 1.3" : "plaintext"
        Benchmark("echo round trip \(transport) (baseline)", configuration: rpc) { benchmark, echo in
            for _ in benchmark.scaledIterations { try await echo.roundTrip() }
        } setup: {
            try await EchoFixture(tls: tls, payload: requestBytes)
        }
        Benchmark("RPC round trip \(transport)", configuration: rpc) { benchmark, fixture in
            for _ in benchmark.scaledIterations { blackHole(try await fixture.connection.call(info)) }
        } setup: {
            try await RPCFixture(tls: tls)
        }
    }
}
