import ClusterPKI
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing
@testable import Wire

/// A fresh cluster PKI in a temporary directory, plus a second, foreign CA.
struct TestPKI {
    let root: URL
    var dir: String { root.appendingPathComponent("pki").path }
    var foreign: String { root.appendingPathComponent("foreign").path }

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("qx-tls-\(UUID().uuidString)")
        try ClusterPKI.initCA(dir: dir)
        try ClusterPKI.issueControl(dir: dir)
        try ClusterPKI.issueNode(name: "node-1", dir: dir)
        try ClusterPKI.issueNode(name: "node-old", dir: dir, validity: .seconds(86_400),
                                 now: Date().addingTimeInterval(-30 * 86_400))
        try ClusterPKI.initCA(dir: foreign)
        try ClusterPKI.issueNode(name: "node-1", dir: foreign)
        try ClusterPKI.issueControl(dir: foreign)
    }

    func remove() { try? FileManager.default.removeItem(at: root) }

    func files(_ name: String, in directory: String? = nil) -> WireTLSFiles {
        let directory = directory ?? dir
        return WireTLSFiles(caCertificatePath: dir + "/ca.pem", certificatePath: directory + "/\(name).pem",
                            privateKeyPath: directory + "/\(name)-key.pem")
    }
}

@Suite("TLS 1.3 with mutual authentication")
struct TLSTests {
    @Test("node and control authenticate each other; identities come from the certificates")
    func mutualAuthentication() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        try await withServer(security: .mutualTLS(pki.files("qarax-control")), acceptedRoles: [.node]) { server in
            let connection = try await dialer(try server.endpoint, security: .mutualTLS(pki.files("node-1"))).connect()
            #expect(connection.peer.certificate?.commonName == "qarax-control")
            #expect(connection.peer.certificate?.organizationalUnit == "control")
            let accepted = try await server.connections.next("accepted")
            #expect(accepted.peer.certificate == WireCertificateIdentity(
                commonName: "node-1", organizationalUnit: "node", dnsNames: ["node-1"]))
            let answer = try await connection.call(Samples.request(.info(Samples.ref("web"))))
            guard case .vm = answer.result else { throw WireError.protocolViolation("\(answer)") }
            await connection.close()
        }
    }

    @Test("refused: a client certificate from another CA, an expired one, or a name that is not the certificate's",
          arguments: ["foreign CA", "expired", "name mismatch"])
    func refusedClients(case name: String) async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        try await withServer(security: .mutualTLS(pki.files("qarax-control")), acceptedRoles: [.node]) { server in
            var local = nodeIdentity
            let files: WireTLSFiles
            switch name {
            case "foreign CA":
                files = WireTLSFiles(caCertificatePath: pki.dir + "/ca.pem",
                                     certificatePath: pki.foreign + "/node-1.pem",
                                     privateKeyPath: pki.foreign + "/node-1-key.pem")
            case "expired":
                files = pki.files("node-old")
                local.name = "node-old"
            default:
                files = pki.files("node-1")
                local.name = "node-2"
            }
            await #expect(throws: (any Error).self) {
                try await dialer(try server.endpoint, security: .mutualTLS(files), local: local).connect()
            }
            let refused = try await server.refused.next("refusal")
            switch (name, refused) {
            case ("name mismatch", .identityMismatch(let what)): #expect(what.contains("node-2"))
            case ("foreign CA", .tls), ("expired", .tls): break
            default: Issue.record("\(name): refused as \(refused)")
            }
            // The listener still serves good peers.
            let connection = try await dialer(try server.endpoint, security: .mutualTLS(pki.files("node-1"))).connect()
            await connection.close()
        }
    }

    @Test("refused: a client without a certificate")
    func missingClientCertificate() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        try await withServer(security: .mutualTLS(pki.files("qarax-control")), acceptedRoles: [.node]) { server in
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv13
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(pki.dir + "/ca.pem"))
            configuration.certificateVerification = .noHostnameVerification
            let context = try NIOSSLContext(configuration: configuration)
            let hello = WireHandshake.hello(from: nodeIdentity)
            let role = WireHandshakeRole.dialer(hello: hello) { ack, certificate in
                try WireHandshake.verify(ack, certificate: certificate, offered: [1], expectedRoles: [.control])
            }
            let endpoint = try server.endpoint
            guard case .tcp(let host, let port) = endpoint else { return }
            let pending = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try WirePendingConnection.configure(channel, tls: context, isServer: false, role: role,
                                                            configuration: .init())
                    }
                }
            await #expect(throws: (any Error).self) { try await pending.connection() }
            guard case .tls = try await server.refused.next("refusal") else {
                Issue.record("not refused by TLS")
                return
            }
        }
    }

    @Test("the node refuses a control daemon whose certificate is from another CA")
    func foreignServer() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let foreignControl = WireTLSFiles(caCertificatePath: pki.foreign + "/ca.pem",
                                          certificatePath: pki.foreign + "/qarax-control.pem",
                                          privateKeyPath: pki.foreign + "/qarax-control-key.pem")
        try await withServer(security: .mutualTLS(foreignControl), acceptedRoles: [.node]) { server in
            do {
                _ = try await dialer(try server.endpoint, security: .mutualTLS(pki.files("node-1"))).connect()
                Issue.record("connected to a control daemon of another cluster")
            } catch WireError.tls(let reason) {
                #expect(!reason.isEmpty)
            }
        }
    }

    @Test("a plaintext client on a TLS port is refused")
    func plaintextOnTLSPort() async throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        try await withServer(security: .mutualTLS(pki.files("qarax-control")), acceptedRoles: [.node]) { server in
            await #expect(throws: (any Error).self) {
                try await dialer(try server.endpoint, configuration: .init(handshakeTimeout: .seconds(5))).connect()
            }
            guard case .tls = try await server.refused.next("refusal") else {
                Issue.record("not refused by TLS")
                return
            }
        }
    }

    @Test("a missing TLS file is named in the error")
    func missingFile() async throws {
        let files = WireTLSFiles(directory: "/nonexistent/pki", name: "node-1")
        await #expect {
            _ = try await dialer(.tcp(host: "127.0.0.1", port: 1), security: .mutualTLS(files)).connect()
        } throws: { error in
            (error as? WireTLSFileError)?.path == "/nonexistent/pki/ca.pem"
        }
    }
}
