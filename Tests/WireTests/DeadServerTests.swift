import NIOCore
import NIOPosix
import Testing
@testable import Wire

/// Answers the first bytes it reads with a HelloAck, then never says anything again.
private final class MuteAcceptor: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var answered = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        answered = true
        var ack = WireHelloAck()
        ack.protocolVersion = 1
        ack.role = .control
        ack.name = "qarax-control"
        var buffer = context.channel.allocator.buffer(capacity: 64)
        do { try WireEnvelope(.helloAck(ack)).write(to: &buffer) } catch { return }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }
}

@Suite("Dead control daemon")
struct DeadServerTests {
    @Test("the dialling node declares a silent control daemon dead after the missed-heartbeat limit")
    func silentServer() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(MuteAcceptor()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let port = try #require(server.localAddress?.port)
        let configuration = WireConnectionConfiguration(heartbeatInterval: .milliseconds(20), missedHeartbeatLimit: 3)
        let connection = try await dialer(.tcp(host: "127.0.0.1", port: port), configuration: configuration).connect()
        let reason = try await withDeadline(20, "dead peer detected") { await connection.closed() }
        guard case .peerUnresponsive = reason else {
            Issue.record("closed for another reason: \(reason)")
            return
        }
        await #expect(throws: WireError.self) {
            try await connection.call(Samples.request(.info(Samples.ref("web"))))
        }
    }
}
