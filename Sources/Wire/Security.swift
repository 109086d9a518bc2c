import Foundation
import NIOSSL

/// The PEM files of one side's TLS identity, as `qarax-control pki` writes them.
public struct WireTLSFiles: Sendable, Hashable {
    /// The cluster CA certificate: the only root trusted for peers.
    public var caCertificatePath: String
    /// This side's certificate (signed by the cluster CA).
    public var certificatePath: String
    /// This side's private key (mode 0600).
    public var privateKeyPath: String

    public init(caCertificatePath: String, certificatePath: String, privateKeyPath: String) {
        self.caCertificatePath = caCertificatePath
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
    }

    /// The files `ClusterPKI` writes for `name` in `directory`: `ca.pem`, `NAME.pem`, `NAME-key.pem`.
    public init(directory: String, name: String) {
        self.init(caCertificatePath: directory + "/ca.pem", certificatePath: directory + "/\(name).pem",
                  privateKeyPath: directory + "/\(name)-key.pem")
    }
}

/// How a TCP link is protected. Unix-socket links never use TLS: the socket is root-only (0600).
public enum WireSecurity: Sendable {
    /// TLS 1.3, both sides present certificates signed by the cluster CA (the default).
    case mutualTLS(WireTLSFiles)
    /// Plaintext and unauthenticated; only on an explicit `--insecure`, and always logged loudly.
    case insecurePlaintext

    /// The warning printed whenever a plaintext TCP link is set up.
    public static func insecureWarning(for endpoint: WireEndpoint) -> String {
        "WARNING: the qarax wire link on \(endpoint) is PLAINTEXT and UNAUTHENTICATED (--insecure): "
            + "anyone who can reach it can read and forge VM operations. Use --tls-dir outside a test bed."
    }

    /// Writes a warning to standard error; the default sink of listeners and dialers.
    public static let standardErrorWarning: @Sendable (String) -> Void = { message in
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    func serverContext() throws -> NIOSSLContext? {
        guard case .mutualTLS(let files) = self else { return nil }
        let (ca, chain, key) = try files.load()
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.trustRoots = .certificates(ca)
        // A server with verification on requires the client's certificate (FAIL_IF_NO_PEER_CERT).
        configuration.certificateVerification = .noHostnameVerification
        return try NIOSSLContext(configuration: configuration)
    }

    func clientContext() throws -> NIOSSLContext? {
        guard case .mutualTLS(let files) = self else { return nil }
        let (ca, chain, key) = try files.load()
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = chain.map { .certificate($0) }
        configuration.privateKey = .privateKey(key)
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.trustRoots = .certificates(ca)
        // Names are checked after the handshake against the certificate's CN/SAN and OU (role).
        configuration.certificateVerification = .noHostnameVerification
        return try NIOSSLContext(configuration: configuration)
    }
}

/// A TLS file that could not be used, with its path and why.
public struct WireTLSFileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

extension WireTLSFiles {
    func load() throws -> (ca: [NIOSSLCertificate], chain: [NIOSSLCertificate], key: NIOSSLPrivateKey) {
        func attempt<T>(_ path: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch { throw WireTLSFileError(path: path, reason: "\(error)") }
        }
        let ca = try attempt(caCertificatePath) { try NIOSSLCertificate.fromPEMFile(caCertificatePath) }
        let chain = try attempt(certificatePath) { try NIOSSLCertificate.fromPEMFile(certificatePath) }
        let key = try attempt(privateKeyPath) { try NIOSSLPrivateKey(file: privateKeyPath, format: .pem) }
        guard !ca.isEmpty else { throw WireTLSFileError(path: caCertificatePath, reason: "holds no certificate") }
        guard !chain.isEmpty else { throw WireTLSFileError(path: certificatePath, reason: "holds no certificate") }
        return (ca, chain, key)
    }
}
