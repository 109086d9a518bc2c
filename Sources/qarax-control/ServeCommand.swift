import ArgumentParser
import ControlCore
import Foundation
import Wire

/// `qarax-control serve`: runs the control daemon.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the control daemon: SQLite inventory, control logic and the REST API.",
        discussion: """
            The API token is read from --token-file, or created there (mode 0600) on first start.

            Nodes connect to --nodes over the Wire protocol with mutual TLS: --tls-dir holds the \
            cluster CA (ca.pem) and this daemon's certificate and key (qarax-control.pem, \
            qarax-control-key.pem; `qarax-control pki issue-control --dir DIR`). A node is known by \
            the name its certificate carries. --insecure serves plaintext instead (logged loudly).

            Once the API accepts requests it prints one line starting with "qarax-control ready:".
            """
    )

    @Option(help: "The SQLite inventory file.")
    var db = "./qarax.db"

    @Option(help: "Where the REST API listens (HOST:PORT; port 0 picks a free one).")
    var api = "127.0.0.1:7700"

    @Option(help: "Where nodes connect (HOST:PORT; port 0 picks a free one).")
    var nodes: String?

    @Option(help: "Directory of the cluster CA and the control certificate (node links, mutual TLS).")
    var tlsDir: String?

    @Flag(help: "Serve node links in plaintext, unauthenticated (test beds only; logged loudly).")
    var insecure = false

    @Option(help: "The API bearer token file (created with mode 0600 when missing). Default: <db>.token")
    var tokenFile: String?

    @Option(help: "Seconds without a heartbeat before a node is DOWN.")
    var heartbeatGrace = 15

    @Option(help: "vCPUs offered per host CPU.")
    var cpuOvercommit = 4.0

    @Option(help: "Guest memory offered per byte of host memory.")
    var memoryOvercommit = 1.0

    func validate() throws {
        if tlsDir != nil && insecure { throw ValidationError("--tls-dir and --insecure exclude each other") }
        if heartbeatGrace <= 0 { throw ValidationError("--heartbeat-grace: \(heartbeatGrace) is not positive") }
        if cpuOvercommit < 1 { throw ValidationError("--cpu-overcommit: \(cpuOvercommit) is below 1") }
        if memoryOvercommit <= 0 { throw ValidationError("--memory-overcommit: \(memoryOvercommit) is not positive") }
        _ = try Self.hostPort(api, option: "--api")
        if let nodes {
            _ = try Self.hostPort(nodes, option: "--nodes")
            if tlsDir == nil && !insecure { throw ValidationError("--nodes needs --tls-dir DIR (mutual TLS) or --insecure") }
            if let tlsDir {
                let files = WireTLSFiles(directory: tlsDir, name: "qarax-control")
                for path in [files.caCertificatePath, files.certificatePath, files.privateKeyPath]
                where !FileManager.default.isReadableFile(atPath: path) {
                    throw ValidationError("--tls-dir \(tlsDir): \(path) is missing or unreadable "
                                          + "(`qarax-control pki issue-control --dir DIR` makes it)")
                }
            }
        }
    }

    static func hostPort(_ text: String, option: String) throws -> (String, Int) {
        guard let address = WireEndpoint.hostPort(text) else { throw ValidationError("\(option): \"\(text)\" is not HOST:PORT") }
        return address
    }

    func run() async throws {
        let (host, port) = try Self.hostPort(api, option: "--api")
        var settings = ControlSettings()
        settings.heartbeatGrace = .seconds(heartbeatGrace)
        settings.placement = PlacementPolicy(cpuOvercommit: cpuOvercommit, memoryOvercommit: memoryOvercommit)
        let configuration = ServerConfiguration(databasePath: db, apiHost: host, apiPort: port,
                                                tokenPath: tokenFile ?? db + ".token", settings: settings)
        var listener: WireListener?
        var nodesLine = ""
        if let nodes {
            let (nodeHost, nodePort) = try Self.hostPort(nodes, option: "--nodes")
            let security: WireSecurity = tlsDir.map { .mutualTLS(WireTLSFiles(directory: $0, name: "qarax-control")) }
                ?? .insecurePlaintext
            let endpoint = WireEndpoint.tcp(host: nodeHost, port: nodePort)
            do {
                listener = try await NodeListener.bind(NodeListenerConfiguration(endpoint: endpoint, security: security),
                                                       warn: { log($0) })
            } catch {
                log("qarax-control serve: --nodes \(nodes): \(error)")
                throw ExitCode(1)
            }
            let bound = listener?.port ?? nodePort
            nodesLine = " nodes on \(WireEndpoint.tcp(host: nodeHost, port: bound))" + (tlsDir == nil ? " (PLAINTEXT)," : " (mutual TLS),")
        }
        var nodeListener: (@Sendable (ControlService) async throws -> Void)?
        if let listener {
            nodeListener = { @Sendable service in
                try await NodeListener.serve(listener, service: service, log: { log("qarax-control: \($0)") })
            }
        }
        let line = nodesLine
        let serveNodes = nodeListener
        try await ControlServer.run(configuration, nodeListener: serveNodes, onReady: { bound in
            log("qarax-control ready: API listening on http://\(host):\(bound),\(line) inventory \(db), token \(configuration.tokenPath)")
        })
    }
}

func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
