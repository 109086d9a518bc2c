/// This side's part of a handshake: who it is and what it offers.
public struct WireLocalIdentity: Sendable {
    public var role: WirePeerRole
    public var name: String
    public var capabilities: [String]
    /// This node's inventory, when this side is a node.
    public var node: WireNodeInventory?
    public var softwareVersion: String
    public var protocolVersions: [UInt32]

    public init(role: WirePeerRole, name: String, capabilities: [String] = [], node: WireNodeInventory? = nil,
                softwareVersion: String = "", protocolVersions: [UInt32] = WireFormat.protocolVersions) {
        self.role = role
        self.name = name
        self.capabilities = capabilities
        self.node = node
        self.softwareVersion = softwareVersion
        self.protocolVersions = protocolVersions
    }
}

/// The Hello / HelloAck rules as pure functions: version choice, role and identity checks.
public enum WireHandshake {
    /// The Hello the dialling side sends.
    public static func hello(from local: WireLocalIdentity) -> WireHello {
        var hello = WireHello()
        hello.protocolVersions = local.protocolVersions
        hello.role = local.role
        hello.name = local.name
        hello.capabilities = local.capabilities
        if let node = local.node { hello.node = node }
        hello.softwareVersion = local.softwareVersion
        return hello
    }

    /// The acceptor's decision on a Hello: the HelloAck to send and the peer it describes.
    /// - Parameters:
    ///   - certificate: the peer's verified certificate identity; `nil` without TLS.
    ///   - acceptedRoles: the roles allowed to dial this side.
    public static func accept(
        _ hello: WireHello, certificate: WireCertificateIdentity?, local: WireLocalIdentity,
        acceptedRoles: [WirePeerRole], heartbeatInterval: Duration?
    ) throws(WireError) -> (ack: WireHelloAck, peer: WirePeer) {
        let common = Set(hello.protocolVersions).intersection(local.protocolVersions)
        guard let version = common.max() else {
            throw .noCommonVersion(offered: hello.protocolVersions, supported: local.protocolVersions)
        }
        guard acceptedRoles.contains(hello.role) else {
            throw .identityMismatch("role \(hello.role.certificateUnit) may not connect here "
                                    + "(accepted: \(acceptedRoles.map(\.certificateUnit).joined(separator: ", ")))")
        }
        guard !hello.name.isEmpty else { throw .protocolViolation("hello.name is empty") }
        if let certificate {
            try check(certificate, claims: hello.name, role: hello.role)
        }
        var ack = WireHelloAck()
        ack.protocolVersion = version
        ack.role = local.role
        ack.name = local.name
        ack.capabilities = local.capabilities.filter(hello.capabilities.contains)
        if let node = local.node { ack.node = node }
        ack.softwareVersion = local.softwareVersion
        ack.heartbeatIntervalMs = UInt32(clamping: heartbeatInterval.map(milliseconds) ?? 0)
        let peer = WirePeer(role: hello.role, name: hello.name, protocolVersion: version,
                            capabilities: ack.capabilities, node: hello.hasNode ? hello.node : nil,
                            softwareVersion: hello.softwareVersion, certificate: certificate)
        return (ack, peer)
    }

    /// The dialler's check of a HelloAck.
    /// - Parameter expectedRoles: the roles the dialler is willing to talk to.
    public static func verify(
        _ ack: WireHelloAck, certificate: WireCertificateIdentity?, offered: [UInt32],
        expectedRoles: [WirePeerRole]
    ) throws(WireError) -> WirePeer {
        guard offered.contains(ack.protocolVersion) else {
            throw .protocolViolation("hello-ack chose version \(ack.protocolVersion), which was not offered (\(offered))")
        }
        guard expectedRoles.contains(ack.role) else {
            throw .identityMismatch("peer is a \(ack.role.certificateUnit), expected "
                                    + expectedRoles.map(\.certificateUnit).joined(separator: " or "))
        }
        if let certificate {
            try check(certificate, claims: ack.name, role: ack.role)
        }
        return WirePeer(role: ack.role, name: ack.name, protocolVersion: ack.protocolVersion,
                        capabilities: ack.capabilities, node: ack.hasNode ? ack.node : nil,
                        softwareVersion: ack.softwareVersion, certificate: certificate)
    }

    /// The certificate must name `name` (CN or a DNS SAN) and carry `role` as its OU.
    public static func check(_ certificate: WireCertificateIdentity, claims name: String,
                             role: WirePeerRole) throws(WireError) {
        guard certificate.commonName == name || certificate.dnsNames.contains(name) else {
            throw .identityMismatch("claims name \"\(name)\" but its certificate is for "
                                    + "\"\(certificate.commonName ?? "")\" \(certificate.dnsNames)")
        }
        guard certificate.organizationalUnit == role.certificateUnit else {
            throw .identityMismatch("claims role \(role.certificateUnit) but its certificate's OU is "
                                    + "\"\(certificate.organizationalUnit ?? "")\"")
        }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
