import ClusterPKI
import Crypto
import Foundation
import Testing
import X509

@Suite("Cluster PKI")
struct ClusterPKITests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("qx-pki-\(UUID().uuidString)")
    var dir: String { root.appendingPathComponent("pki").path }

    func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    func certificate(_ path: String) throws -> Certificate {
        try Certificate(pemEncoded: String(contentsOfFile: path, encoding: .utf8))
    }

    @Test("init creates a self-signed CA; the key is 0600, the directory 0700")
    func initCA() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let files = try ClusterPKI.initCA(dir: dir)
        #expect(try mode(files.privateKeyPath) == 0o600)
        #expect(try mode(files.certificatePath) == 0o644)
        #expect(try mode(dir) == 0o700)
        let ca = try certificate(files.certificatePath)
        #expect(ca.issuer == ca.subject)
        #expect(try ca.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(ca.publicKey.isValidSignature(ca.signature, for: ca))
    }

    @Test("init refuses to replace an existing CA and names the file")
    func initTwice() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        try ClusterPKI.initCA(dir: dir)
        #expect(throws: PKIError(subject: dir + "/ca.pem",
                                 reason: "already exists; a cluster CA is never replaced in place")) {
            try ClusterPKI.initCA(dir: dir)
        }
    }

    @Test("issued certificates are signed by the CA and carry name, role and validity",
          arguments: [PKIRole.node, .control, .admin])
    func issue(role: PKIRole) throws {
        defer { try? FileManager.default.removeItem(at: root) }
        try ClusterPKI.initCA(dir: dir)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let files = try ClusterPKI.issue(name: "member-1", role: role, dir: dir, validity: .seconds(86_400), now: now)
        #expect(files.certificatePath == dir + "/member-1.pem")
        #expect(try mode(files.privateKeyPath) == 0o600)
        let ca = try certificate(dir + "/ca.pem")
        let leaf = try certificate(files.certificatePath)
        #expect(ca.publicKey.isValidSignature(leaf.signature, for: leaf))
        #expect(leaf.issuer == ca.subject)
        let subject = leaf.subject.description
        #expect(subject.contains("CN=member-1") && subject.contains("OU=\(role.rawValue)"), "\(subject)")
        #expect(try leaf.extensions.subjectAlternativeNames == SubjectAlternativeNames([.dnsName("member-1")]))
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
        #expect(leaf.notValidBefore == now.addingTimeInterval(-300))
        #expect(leaf.notValidAfter == now.addingTimeInterval(86_400))
        let key = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: files.privateKeyPath,
                                                                          encoding: .utf8))
        #expect(Certificate.PublicKey(key.publicKey) == leaf.publicKey)
    }

    @Test("names that cannot be file names or CN are refused", arguments: ["", "a/b", "-x", "ca", "node 1",
                                                                          String(repeating: "n", count: 64)])
    func badNames(name: String) throws {
        defer { try? FileManager.default.removeItem(at: root) }
        try ClusterPKI.initCA(dir: dir)
        #expect {
            try ClusterPKI.issueNode(name: name, dir: dir)
        } throws: { error in
            (error as? PKIError)?.subject == "name"
        }
    }

    @Test("issuing without a CA says to run pki init; issuing twice names the existing file")
    func missingCAAndTwice() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        #expect {
            try ClusterPKI.issueNode(name: "node-1", dir: dir)
        } throws: { error in
            (error as? PKIError)?.reason.contains("pki init") == true
        }
        try ClusterPKI.initCA(dir: dir)
        try ClusterPKI.issueNode(name: "node-1", dir: dir)
        #expect(throws: PKIError(subject: dir + "/node-1.pem", reason: "already exists; remove it first to re-issue")) {
            try ClusterPKI.issueNode(name: "node-1", dir: dir)
        }
    }
}
