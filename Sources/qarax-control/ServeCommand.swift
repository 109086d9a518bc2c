import ArgumentParser
import ControlCore
import Foundation

/// `qarax-control serve`: runs the control daemon.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the control daemon: SQLite inventory, control logic and the REST API.",
        discussion: """
            The API token is read from --token-file, or created there (mode 0600) on first start. \
            Node connections (--nodes) are not served by this build yet: the node protocol listener \
            arrives with the Wire library; the flag is accepted and logged.
            """
    )

    @Option(help: "The SQLite inventory file.")
    var db = "./qarax.db"

    @Option(help: "Where the REST API listens (HOST:PORT; port 0 picks a free one).")
    var api = "127.0.0.1:7700"

    @Option(help: "Where nodes connect (HOST:PORT). Not served yet by this build.")
    var nodes: String?

    @Option(help: "Directory of the cluster CA and the control certificate (node links).")
    var tlsDir: String?

    @Flag(help: "Allow plaintext node links (logged loudly).")
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
        if let nodes { _ = try Self.hostPort(nodes, option: "--nodes") }
    }

    static func hostPort(_ text: String, option: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(option): \"\(text)\" is not HOST:PORT")
        }
        return (String(text[..<colon]), port)
    }

    func run() async throws {
        let (host, port) = try Self.hostPort(api, option: "--api")
        if let nodes {
            log("--nodes \(nodes): node connections are not served by this build yet (the Wire listener is not linked)")
        }
        if insecure { log("WARNING: --insecure: node links would be plaintext and unauthenticated") }
        if let tlsDir { log("--tls-dir \(tlsDir): kept for node links (not served by this build yet)") }
        var settings = ControlSettings()
        settings.heartbeatGrace = .seconds(heartbeatGrace)
        settings.placement = PlacementPolicy(cpuOvercommit: cpuOvercommit, memoryOvercommit: memoryOvercommit)
        let configuration = ServerConfiguration(databasePath: db, apiHost: host, apiPort: port,
                                                tokenPath: tokenFile ?? db + ".token", settings: settings)
        try await ControlServer.run(configuration, onReady: { bound in
            log("qarax-control: API listening on http://\(host):\(bound), inventory \(db), token \(configuration.tokenPath)")
        })
    }
}

func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
