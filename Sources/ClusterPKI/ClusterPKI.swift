public import Foundation
import Crypto
import X509

/// The kinds of certificates the cluster CA issues. The role is the certificate's subject OU,
/// which the wire handshake checks against the role a peer claims.
public enum PKIRole: String, Sendable, CaseIterable {
    /// A qarax-node agent.
    case node
    /// The qarax-control daemon.
    case control
    /// An administration client.
    case admin
}

/// The PEM files one issuance wrote.
public struct PKIFiles: Sendable, Hashable {
    public var certificatePath: String
    public var privateKeyPath: String
}

/// Why a PKI operation failed: the path or name involved and the reason.
public struct PKIError: Error, Sendable, Hashable, CustomStringConvertible {
    public var subject: String
    public var reason: String
    public init(subject: String, reason: String) {
        self.subject = subject
        self.reason = reason
    }
    public var description: String { "\(subject): \(reason)" }
}

/// The cluster's certificate authority: P-256 keys, ECDSA-SHA256 signatures, PEM files, private
/// keys written with mode 0600 and never overwritten.
///
/// Directory layout: `ca.pem`, `ca-key.pem`, and for each issued name `NAME.pem`, `NAME-key.pem`.
public enum ClusterPKI {
    /// Default lifetime of the CA certificate: ten years.
    public static let defaultCAValidity: Duration = .seconds(10 * 365 * 86_400)
    /// Default lifetime of node, control and admin certificates: one year.
    public static let defaultLeafValidity: Duration = .seconds(365 * 86_400)

    public static func caCertificatePath(dir: String) -> String { dir + "/ca.pem" }
    public static func caKeyPath(dir: String) -> String { dir + "/ca-key.pem" }

    /// Creates the cluster CA in `dir` (created 0700 when missing). Refuses to replace an existing CA.
    @discardableResult
    public static func initCA(dir: String, commonName: String = "qarax cluster CA",
                              validity: Duration = defaultCAValidity, now: Date = Date()) throws -> PKIFiles {
        try makeDirectory(dir)
        let files = PKIFiles(certificatePath: caCertificatePath(dir: dir), privateKeyPath: caKeyPath(dir: dir))
        for path in [files.certificatePath, files.privateKeyPath] where FileManager.default.fileExists(atPath: path) {
            throw PKIError(subject: path, reason: "already exists; a cluster CA is never replaced in place")
        }
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("qarax")
            CommonName(commonName)
        }
        let publicKey = Certificate.PublicKey(key.publicKey)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: publicKey)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(seconds(validity)),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerPrivateKey: .init(key))
        try writeSecret(key.pemRepresentation, to: files.privateKeyPath)
        try writePublic(pem(certificate), to: files.certificatePath)
        return files
    }

    /// Issues a node certificate: CN and DNS SAN `name`, OU `node`.
    @discardableResult
    public static func issueNode(name: String, dir: String, validity: Duration = defaultLeafValidity,
                                 now: Date = Date()) throws -> PKIFiles {
        try issue(name: name, role: .node, dir: dir, validity: validity, now: now)
    }

    /// Issues the control daemon's certificate (OU `control`).
    @discardableResult
    public static func issueControl(name: String = "qarax-control", dir: String,
                                    validity: Duration = defaultLeafValidity, now: Date = Date()) throws -> PKIFiles {
        try issue(name: name, role: .control, dir: dir, validity: validity, now: now)
    }

    /// Issues an administration client's certificate (OU `admin`).
    @discardableResult
    public static func issueClient(name: String, dir: String, validity: Duration = defaultLeafValidity,
                                   now: Date = Date()) throws -> PKIFiles {
        try issue(name: name, role: .admin, dir: dir, validity: validity, now: now)
    }

    /// Issues a certificate for `name` in `role`, signed by the CA in `dir`.
    /// `now` and `validity` set the validity window (`now - 5 min` to `now + validity`).
    @discardableResult
    public static func issue(name: String, role: PKIRole, dir: String, validity: Duration = defaultLeafValidity,
                             now: Date = Date()) throws -> PKIFiles {
        if let problem = nameProblem(name) { throw PKIError(subject: "name", reason: problem) }
        let (caCertificate, caKey) = try loadCA(dir: dir)
        let files = PKIFiles(certificatePath: dir + "/\(name).pem", privateKeyPath: dir + "/\(name)-key.pem")
        for path in [files.certificatePath, files.privateKeyPath] where FileManager.default.fileExists(atPath: path) {
            throw PKIError(subject: path, reason: "already exists; remove it first to re-issue")
        }
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let subject = try DistinguishedName {
            OrganizationName("qarax")
            OrganizationalUnitName(role.rawValue)
            CommonName(name)
        }
        let caSKI = try caCertificate.extensions.subjectKeyIdentifier?.keyIdentifier
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            SubjectAlternativeNames([.dnsName(name)])
            SubjectKeyIdentifier(hash: publicKey)
            if let caSKI { AuthorityKeyIdentifier(keyIdentifier: caSKI) }
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(seconds(validity)),
            issuer: caCertificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: .init(caKey))
        try writeSecret(key.pemRepresentation, to: files.privateKeyPath)
        try writePublic(pem(certificate), to: files.certificatePath)
        return files
    }

    /// Why `name` cannot be a certificate name (1–63 of `A-Z a-z 0-9 . _ -`, starting with a letter or
    /// digit: it becomes a file name), or `nil`.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name.utf8.count > 63 { return "\"\(name)\" is longer than 63 characters" }
        let ok = name.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        if !ok { return "\"\(name)\" has characters outside A-Z a-z 0-9 . _ -" }
        if let first = name.utf8.first, [UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-")].contains(first) {
            return "\"\(name)\" does not start with a letter or digit"
        }
        if name == "ca" || name == "ca-key" { return "\"\(name)\" is reserved for the CA's files" }
        return nil
    }

    static func loadCA(dir: String) throws -> (Certificate, P256.Signing.PrivateKey) {
        let certificatePath = caCertificatePath(dir: dir)
        let keyPath = caKeyPath(dir: dir)
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: String(contentsOfFile: certificatePath, encoding: .utf8))
        } catch {
            throw PKIError(subject: certificatePath, reason: "cannot read the CA certificate (run `pki init` first): \(error)")
        }
        do {
            return (certificate, try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: keyPath, encoding: .utf8)))
        } catch {
            throw PKIError(subject: keyPath, reason: "cannot read the CA key: \(error)")
        }
    }

    static func pem(_ certificate: Certificate) throws -> String {
        try certificate.serializeAsPEM().pemString
    }

    static func seconds(_ duration: Duration) -> TimeInterval {
        let (seconds, attoseconds) = duration.components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
