/// Limits and timers of one connection. Every queue a peer can fill has a bound here.
public struct WireConnectionConfiguration: Sendable {
    /// The largest frame sent or accepted, header included.
    public var maxFrameSize: Int
    /// How long `call` waits for an answer when the caller gives no timeout.
    public var defaultCallTimeout: Duration
    /// Requests this side has sent and not yet had answered.
    public var maxOutgoingInFlight: Int
    /// Calls waiting for an in-flight slot; beyond this `call` fails with `.overloaded`.
    public var maxQueuedCalls: Int
    /// Peer requests being handled at once; at the limit this side stops reading the socket.
    public var maxIncomingInFlight: Int
    /// Interval of heartbeats; `nil` sends none and never declares the peer dead.
    public var heartbeatInterval: Duration?
    /// Intervals without any frame from the peer before the connection is closed.
    public var missedHeartbeatLimit: Int
    /// Events received and not yet consumed; past this the connection is closed (the peer resyncs
    /// with a full inventory report on reconnect) rather than events being dropped silently.
    public var eventBufferSize: Int
    /// Time for the Hello / HelloAck exchange (and the TLS handshake before it).
    public var handshakeTimeout: Duration
    /// Hears the round trip of each of this side's heartbeats (Heartbeat → HeartbeatAck), on the
    /// connection's event loop: keep it short.
    public var heartbeatRoundTrip: (@Sendable (Duration) -> Void)?

    public init(
        maxFrameSize: Int = WireFormat.defaultMaxFrameSize,
        defaultCallTimeout: Duration = .seconds(30),
        maxOutgoingInFlight: Int = 64,
        maxQueuedCalls: Int = 256,
        maxIncomingInFlight: Int = 64,
        heartbeatInterval: Duration? = .seconds(5),
        missedHeartbeatLimit: Int = 3,
        eventBufferSize: Int = 1024,
        handshakeTimeout: Duration = .seconds(10),
        heartbeatRoundTrip: (@Sendable (Duration) -> Void)? = nil
    ) {
        precondition(maxFrameSize >= WireFormat.headerSize && maxOutgoingInFlight > 0 && maxQueuedCalls >= 0
                     && maxIncomingInFlight > 0 && missedHeartbeatLimit > 0 && eventBufferSize > 0,
                     "connection limits must be positive")
        self.maxFrameSize = maxFrameSize
        self.defaultCallTimeout = defaultCallTimeout
        self.maxOutgoingInFlight = maxOutgoingInFlight
        self.maxQueuedCalls = maxQueuedCalls
        self.maxIncomingInFlight = maxIncomingInFlight
        self.heartbeatInterval = heartbeatInterval
        self.missedHeartbeatLimit = missedHeartbeatLimit
        self.eventBufferSize = eventBufferSize
        self.handshakeTimeout = handshakeTimeout
        self.heartbeatRoundTrip = heartbeatRoundTrip
    }
}

/// The subject of the peer's TLS certificate, as far as qarax uses it.
public struct WireCertificateIdentity: Sendable, Hashable {
    /// Subject CN: the node or client name.
    public var commonName: String?
    /// Subject OU: the role (`node`, `control`, `admin`).
    public var organizationalUnit: String?
    /// Subject alternative names of type DNS.
    public var dnsNames: [String]

    public init(commonName: String?, organizationalUnit: String?, dnsNames: [String]) {
        self.commonName = commonName
        self.organizationalUnit = organizationalUnit
        self.dnsNames = dnsNames
    }
}

/// Who the handshake says is on the other end.
public struct WirePeer: Sendable, Equatable {
    public var role: WirePeerRole
    public var name: String
    /// The message-schema version both sides speak.
    public var protocolVersion: UInt32
    public var capabilities: [String]
    /// The node's inventory when the peer is a node.
    public var node: WireNodeInventory?
    public var softwareVersion: String
    /// The verified TLS certificate's identity; `nil` on plaintext and Unix-socket connections.
    public var certificate: WireCertificateIdentity?

    public init(role: WirePeerRole, name: String, protocolVersion: UInt32, capabilities: [String] = [],
                node: WireNodeInventory? = nil, softwareVersion: String = "",
                certificate: WireCertificateIdentity? = nil) {
        self.role = role
        self.name = name
        self.protocolVersion = protocolVersion
        self.capabilities = capabilities
        self.node = node
        self.softwareVersion = softwareVersion
        self.certificate = certificate
    }
}

extension WirePeerRole {
    /// The certificate OU that carries this role.
    public var certificateUnit: String {
        switch self {
        case .node: "node"
        case .control: "control"
        case .admin: "admin"
        case .unspecified, .UNRECOGNIZED: "unspecified"
        }
    }
}

/// A request received from the peer, to be answered through `WireConnection.respond`.
struct WireIncomingRequest: Sendable {
    var id: UInt64
    var request: WireRequest
}
