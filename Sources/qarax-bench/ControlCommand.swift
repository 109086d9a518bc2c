import ArgumentParser
import ControlBench
import Dispatch
import Foundation
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// `qarax-bench control`: control-plane scale.
struct Control: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load qarax-control with simulated nodes and API calls; compare with a discard server.",
        discussion: """
        Simulated nodes (in this process) speak the real Wire protocol — mutual TLS unless --plaintext, \
        Hello with an inventory, a VM report, VM operations answered from memory — and send a \
        liveness report (a resources event, as qarax-node does) every --beat-interval with jitter; \
        their Wire connections send a heartbeat after --wire-heartbeat seconds without inbound \
        traffic, and its round trip is measured. For each node count, each server runs as its own process: qarax-control serve, \
        and the baseline, a discard server on the same stack (Wire listener, TLS, link acceptance, \
        Hummingbird) that drops events and answers the API with canned bodies. Measured per run: \
        the server's CPU (share of one core, /proc) and RSS with heartbeats only, heartbeat round \
        trip (node side), event lag (node writes an event → server takes it up), API latency per \
        route at --api-rate (open loop, counted from each request's due time), and after SIGTERM \
        and a restart on the same ports, the time until every node is back.

        The load generator shares the machine with the server: on a 2-core host its own work \
        competes with the server's, and latencies include that.
        """)

    @Option(help: "Fleet sizes, comma-separated.")
    var nodes = "100,1000,10000"
    @Option(help: "Servers to measure, comma-separated: qarax-control, discard.")
    var targets = "discard,qarax-control"
    @Option(help: "Seconds between a node's liveness reports.")
    var beatInterval = 1.0
    @Option(help: "Seconds of silence before a node's Wire connection sends a heartbeat (its round trip is measured).")
    var wireHeartbeat = 5.0
    @Option(help: "Each wait between beats is interval × (1 ± jitter).")
    var jitter = 0.2
    @Option(help: "New node connections per second while a fleet starts.")
    var connectRate = 1000
    @Option(help: "Seconds of heartbeats only (the CPU and RSS window).")
    var steady = 20.0
    @Option(help: "API requests per second (create, start, stop, get, delete of VMs); 0 skips the API phase.")
    var apiRate = 1000.0
    @Option(help: "Seconds of API load.")
    var apiDuration = 10.0
    @Option(help: "Concurrent API connections.")
    var apiUsers = 32
    @Flag(help: "No restart phase.")
    var noRestart = false
    @Flag(help: "Node links in plaintext instead of mutual TLS.")
    var plaintext = false
    @Option(help: "CA and node certificates, kept between runs.")
    var pkiDir = "/var/tmp/qarax-bench-pki"
    @Option(help: "The qarax-control executable (default: next to qarax-bench).")
    var controlBinary: String?
    @Option(help: "Directory for control.md and control.json.")
    var output: String?
    @Flag(help: "No progress line.")
    var quiet = false

    func run() async throws {
        func list(_ text: String, _ option: String) throws -> [Int] {
            let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
                throw ValidationError("\(option): '\(text)' is not a comma-separated list of numbers")
            }
            return values.compactMap { $0 }
        }
        let directory = QaraxBench.executableDirectory()
        var options = ControlBenchOptions(controlBinary: controlBinary ?? directory + "/qarax-control",
                                          benchBinary: directory + "/qarax-bench", pkiDirectory: pkiDir,
                                          scratchDirectory: NSTemporaryDirectory() + "qarax-bench-control-\(getpid())")
        options.nodeCounts = try list(nodes, "--nodes")
        options.targets = try targets.split(separator: ",").map { name in
            guard let target = ControlTarget(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--targets: '\(name)' is neither qarax-control nor discard")
            }
            return target
        }
        options.beatInterval = .seconds(beatInterval)
        options.wireHeartbeatInterval = .seconds(wireHeartbeat)
        options.jitter = jitter
        options.connectRate = connectRate
        options.steady = .seconds(steady)
        options.apiRate = apiRate
        options.apiDuration = .seconds(apiDuration)
        options.apiUsers = apiUsers
        options.restart = !noRestart
        options.tls = !plaintext
        let problems = options.problems() + (steady > 0 ? [] : ["--steady: \(steady) is not positive"])
        guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "\n")) }
        let quiet = self.quiet
        let bench = ControlBench(options: options) { line in
            guard !quiet else { return }
            FileHandle.standardError.write(Data("\r\u{1b}[K\(line)".utf8))
        }
        let runs = try await QaraxBench.cancellable { try await bench.run() }
        if !quiet { FileHandle.standardError.write(Data("\r\u{1b}[K".utf8)) }
        try? FileManager.default.removeItem(atPath: options.scratchDirectory)
        let report = ControlReport(runs: runs, host: QaraxBench.hostDescription(), tls: options.tls,
                                   beatInterval: options.beatInterval, apiRate: options.apiRate)
        print(report.markdown())
        if let output {
            try report.write(to: output)
            print("Written: \(output)/control.md, control.json")
        }
    }
}

/// The baseline server of `qarax-bench control` (started by it; not for operators).
struct DiscardServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discard-server",
        abstract: "The baseline of `qarax-bench control`: Wire + HTTP on qarax-control's stack, no control logic.",
        shouldDisplay: false)

    @Option(help: "HOST:PORT of the HTTP API.")
    var api = "127.0.0.1:0"
    @Option(help: "HOST:PORT for node links.")
    var nodes = "127.0.0.1:0"
    @Option(help: "Directory with ca.pem, qarax-control.pem and qarax-control-key.pem.")
    var tlsDir: String?
    @Flag(help: "Plaintext node links.")
    var insecure = false

    func run() async throws {
        func hostPort(_ text: String, _ option: String) throws -> (String, Int) {
            guard let address = WireEndpoint.hostPort(text) else { throw ValidationError("\(option): '\(text)' is not HOST:PORT") }
            return address
        }
        guard (tlsDir != nil) != insecure else { throw ValidationError("pass exactly one of --tls-dir and --insecure") }
        let apiAddress = try hostPort(api, "--api")
        let (nodeHost, nodePort) = try hostPort(nodes, "--nodes")
        let security: WireSecurity = tlsDir.map { .mutualTLS(WireTLSFiles(directory: $0, name: "qarax-control")) } ?? .insecurePlaintext
        try await DiscardServer.run(api: apiAddress, nodes: .tcp(host: nodeHost, port: nodePort), security: security) { api, nodes in
            FileHandle.standardError.write(Data(
                "qarax-bench discard-server ready: API listening on http://\(apiAddress.0):\(api), nodes on \(nodeHost):\(nodes)\n".utf8))
        }
    }
}
