import Foundation
import Testing
@testable import ControlCore

/// Runs `qarax-control` client subcommands against a real daemon.
@Suite("CLI", .serialized)
struct CLITests {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func run(_ arguments: [String], dir: TempDir, environment: [String: String]) async throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        process.arguments = arguments
        process.environment = environment
        let out = dir.path + "/cli-\(UUID().uuidString).out"
        let err = out + ".err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        let (exited, continuation) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { continuation.yield($0.terminationStatus); continuation.finish() }
        try process.run()
        var status: Int32 = -1
        for await code in exited { status = code }
        return Result(status: status,
                      stdout: String(decoding: FileManager.default.contents(atPath: out) ?? Data(), as: UTF8.self),
                      stderr: String(decoding: FileManager.default.contents(atPath: err) ?? Data(), as: UTF8.self))
    }

    @Test func clientSubcommandsTalkToTheDaemon() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let daemon = try DaemonProcess(dir: dir, run: 1)
        defer { daemon.signal(SIGKILL) }
        let port = try #require(try await daemon.port())
        let token = String(decoding: FileManager.default.contents(atPath: dir.path + "/q.db.token") ?? Data(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let env = ["QARAX_ENDPOINT": "http://127.0.0.1:\(port)", "QARAX_TOKEN": token, "HOME": dir.path]
        let client = ControlClient(ClientConfiguration(endpoint: try #require(URL(string: "http://127.0.0.1:\(port)")), token: token))
        _ = try await client.send("POST", "/v1/nodes", json: try JSONEncoder().encode(RegisterNodeBody(name: "n1", address: "10.0.0.1:7701")))

        let nodes = try await Self.run(["node", "list"], dir: dir, environment: env)
        #expect(nodes.status == 0, "\(nodes.stderr)")
        #expect(nodes.stdout.hasPrefix("NAME"))
        #expect(nodes.stdout.contains("n1    UNKNOWN  10.0.0.1:7701"))

        let net = try await Self.run(["network", "create", "prod", "--node", "n1", "--kind", "bridge", "--parent", "br0"],
                                     dir: dir, environment: env)
        #expect(net.status == 0, "\(net.stderr)")
        let badKind = try await Self.run(["network", "create", "x", "--node", "n1", "--kind", "wifi", "--parent", "br0"],
                                         dir: dir, environment: env)
        #expect(badKind.status != 0)
        #expect(badKind.stderr.contains("--kind: \"wifi\" is not one of: bridge, macvtap"))

        let created = try await Self.run(["vm", "create", "--name", "web", "--kernel", "/k", "--memory", "512M", "--vcpus", "2"],
                                         dir: dir, environment: env)
        #expect(created.status == 0, "\(created.stderr)")
        let list = try await Self.run(["vm", "list", "-o", "json"], dir: dir, environment: env)
        let page = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any]
        let items = page?["items"] as? [[String: Any]]
        #expect(items?.first?["name"] as? String == "web")
        #expect(items?.first?["vcpus"] as? Int == 2)

        let invalid = try await Self.run(["vm", "create", "--name", "bad name", "--kernel", "/k"], dir: dir, environment: env)
        #expect(invalid.status == 1)
        #expect(invalid.stderr.contains("spec.name:"), "\(invalid.stderr)")

        let start = try await Self.run(["vm", "start", "web"], dir: dir, environment: env)
        #expect(start.status == 1)
        #expect(start.stderr.contains("n1: node is UNKNOWN"), "\(start.stderr)")

        let image = dir.path + "/kernel.bin"
        _ = FileManager.default.createFile(atPath: image, contents: Data("abc".utf8))
        let add = try await Self.run(["image", "add", "k1", "--kind", "kernel", "--path", image, "--wait"], dir: dir, environment: env)
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.stdout.contains("succeeded"))
        let images = try await Self.run(["image", "list"], dir: dir, environment: env)
        #expect(images.stdout.contains("k1    kernel  3     ba7816bf8f01cfea"), "\(images.stdout)")

        let deleted = try await Self.run(["vm", "delete", "web", "--wait"], dir: dir, environment: env)
        #expect(deleted.status == 0, "\(deleted.stderr)")
        let missing = try await Self.run(["vm", "show", "web"], dir: dir, environment: env)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("VM \"web\" does not exist (HTTP 404, not_found)"))

        let noToken = try await Self.run(["node", "list"], dir: dir,
                                         environment: ["QARAX_ENDPOINT": "http://127.0.0.1:\(port)", "QARAX_TOKEN": "wrong", "HOME": dir.path])
        #expect(noToken.status == 1)
        #expect(noToken.stderr.contains("HTTP 401"))
    }
}
