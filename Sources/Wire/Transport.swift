import Foundation
public import NIOCore
public import NIOPosix
import NIOSSL

/// Where a link runs: TCP (TLS unless `--insecure`) or the node's local Unix socket (no TLS).
public enum WireEndpoint: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
    /// `HOST:PORT` (the last colon separates the port, 0–65535), or nil.
    public static func hostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        return (String(text[..<colon]), port)
    }
}

/// A channel whose pipeline is set up and whose handshake is under way.
struct WirePendingConnection: Sendable {
    var channel: any Channel
    var handler: NIOLoopBound<WireConnectionHandler>
    var requests: AsyncStream<WireIncomingRequest>
    var events: AsyncStream<WireEvent>
    var established: EventLoopFuture<WirePeer>
    var configuration: WireConnectionConfiguration

    /// Waits for the handshake and returns the open connection.
    func connection() async throws -> WireConnection {
        let peer = try await established.get()
        return WireConnection(peer: peer, channel: channel, handler: handler, requests: requests, events: events,
                              configuration: configuration)
    }

    /// Adds TLS (when given), the frame codec and the protocol handler to `channel`.
    static func configure(_ channel: any Channel, tls: NIOSSLContext?, isServer: Bool,
                          role: WireHandshakeRole, configuration: WireConnectionConfiguration) throws -> Self {
        let (requests, requestInput) = AsyncStream.makeStream(
            of: WireIncomingRequest.self, bufferingPolicy: .bufferingOldest(configuration.maxIncomingInFlight))
        let (events, eventInput) = AsyncStream.makeStream(
            of: WireEvent.self, bufferingPolicy: .bufferingOldest(configuration.eventBufferSize))
        let established = channel.eventLoop.makePromise(of: WirePeer.self)
        let handler = WireConnectionHandler(configuration: configuration, role: role, established: established,
                                            requests: requestInput, events: eventInput)
        let pipeline = channel.pipeline.syncOperations
        if let tls {
            if isServer {
                try pipeline.addHandler(NIOSSLServerHandler(context: tls))
            } else {
                try pipeline.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil))
            }
        }
        try pipeline.addHandler(ByteToMessageHandler(WireFrameDecoder(maxFrameSize: configuration.maxFrameSize)))
        try pipeline.addHandler(MessageToByteHandler(WireFrameEncoder(maxFrameSize: configuration.maxFrameSize)))
        try pipeline.addHandler(handler)
        return Self(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop),
                    requests: requests, events: events, established: established.futureResult,
                    configuration: configuration)
    }
}

/// Dials a peer and runs the handshake: the node agent towards qarax-control, an admin client
/// towards the node's local socket.
public struct WireDialer: Sendable {
    public var endpoint: WireEndpoint
    public var security: WireSecurity
    public var local: WireLocalIdentity
    /// Roles this side accepts on the other end.
    public var expectedPeerRoles: [WirePeerRole]
    public var configuration: WireConnectionConfiguration
    public var warn: @Sendable (String) -> Void
    private let group: any EventLoopGroup

    public init(endpoint: WireEndpoint, security: WireSecurity, local: WireLocalIdentity,
                expectedPeerRoles: [WirePeerRole], configuration: WireConnectionConfiguration = .init(),
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                warn: @escaping @Sendable (String) -> Void = WireSecurity.standardErrorWarning) {
        self.endpoint = endpoint
        self.security = security
        self.local = local
        self.expectedPeerRoles = expectedPeerRoles
        self.configuration = configuration
        self.group = group
        self.warn = warn
    }

    /// Connects, runs TLS and the Hello exchange, and returns the open connection.
    public func connect() async throws -> WireConnection {
        let tls: NIOSSLContext?
        switch endpoint {
        case .unix:
            tls = nil
        case .tcp:
            tls = try security.clientContext()
            if tls == nil { warn(WireSecurity.insecureWarning(for: endpoint)) }
        }
        let hello = WireHandshake.hello(from: local)
        let offered = local.protocolVersions
        let expected = expectedPeerRoles
        let role = WireHandshakeRole.dialer(hello: hello) { ack, certificate in
            try WireHandshake.verify(ack, certificate: certificate, offered: offered, expectedRoles: expected)
        }
        let configuration = self.configuration
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.init(configuration.handshakeTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<WirePendingConnection> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try WirePendingConnection.configure(channel, tls: tls, isServer: false, role: role,
                                                    configuration: configuration)
            }
        }
        let pending: WirePendingConnection
        switch endpoint {
        case .tcp(let host, let port):
            pending = try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
        case .unix(let path):
            pending = try await ClientBootstrap(group: group)
                .connectTimeout(.init(configuration.handshakeTimeout))
                .connect(unixDomainSocketPath: path, channelInitializer: initializer)
        }
        return try await pending.connection()
    }
}

/// Accepts peers on one endpoint. Each connection runs in its own child task of a discarding task
/// group, so a peer that fails (bad frames, failed handshake) never stops the listener.
public final class WireListener: Sendable {
    /// The bound address (with the real port when bound to port 0).
    public let localAddress: SocketAddress?
    private let serverChannel: NIOAsyncChannel<WirePendingConnection, Never>

    private init(serverChannel: NIOAsyncChannel<WirePendingConnection, Never>) {
        self.serverChannel = serverChannel
        self.localAddress = serverChannel.channel.localAddress
    }

    /// The bound TCP port.
    public var port: Int? { localAddress?.port }

    /// Binds `endpoint`. A Unix socket replaces a stale socket file and is made 0600.
    public static func bind(
        endpoint: WireEndpoint, security: WireSecurity, local: WireLocalIdentity, acceptedRoles: [WirePeerRole],
        configuration: WireConnectionConfiguration = .init(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        warn: @escaping @Sendable (String) -> Void = WireSecurity.standardErrorWarning
    ) async throws -> WireListener {
        let tls: NIOSSLContext?
        switch endpoint {
        case .unix:
            tls = nil
        case .tcp:
            tls = try security.serverContext()
            if tls == nil { warn(WireSecurity.insecureWarning(for: endpoint)) }
        }
        let interval = configuration.heartbeatInterval
        let role = WireHandshakeRole.acceptor { hello, certificate in
            try WireHandshake.accept(hello, certificate: certificate, local: local, acceptedRoles: acceptedRoles,
                                     heartbeatInterval: interval)
        }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<WirePendingConnection> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try WirePendingConnection.configure(channel, tls: tls, isServer: true, role: role,
                                                    configuration: configuration)
            }
        }
        let server: NIOAsyncChannel<WirePendingConnection, Never>
        switch endpoint {
        case .tcp(let host, let port):
            server = try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
        case .unix(let path):
            server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true,
                                              childChannelInitializer: initializer)
            guard chmod(path, 0o600) == 0 else {
                let code = errno
                try? await server.channel.close()
                throw WireListenerError(endpoint: endpoint, operation: "chmod 0600", errno: code)
            }
        }
        return WireListener(serverChannel: server)
    }

    /// Accepts connections until the listener is closed or the task cancelled; `onConnection` runs
    /// for each peer whose handshake succeeded, and the connection is closed when it returns.
    /// `onRefused` hears about peers whose handshake failed.
    public func run(
        onRefused: @escaping @Sendable (WireError) -> Void = { _ in },
        _ onConnection: @escaping @Sendable (WireConnection) async -> Void
    ) async throws {
        try await serverChannel.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await pending in inbound {
                    group.addTask {
                        let connection: WireConnection
                        do {
                            connection = try await pending.connection()
                        } catch {
                            onRefused(error as? WireError ?? .connectionClosed(reason: "\(error)"))
                            try? await pending.channel.close()
                            return
                        }
                        await onConnection(connection)
                        await connection.close()
                    }
                }
            }
        }
    }

    /// Stops accepting; `run` returns once current connections have finished.
    public func close() async {
        try? await serverChannel.channel.close()
    }
}

/// The listener could not be set up.
public struct WireListenerError: Error, Sendable, CustomStringConvertible {
    public var endpoint: WireEndpoint
    public var operation: String
    public var errno: Int32
    public var description: String { "\(endpoint): \(operation) failed: \(String(cString: strerror(errno)))" }
}
