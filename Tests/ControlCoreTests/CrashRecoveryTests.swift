import Foundation
import ControlBench
import Testing
@testable import ControlCore
import VMModel
#if canImport(Glibc)
import Glibc
#endif

/// The real `qarax-control serve` binary on a temporary inventory; its ready line and its exit
/// are awaited, never polled.
final class DaemonProcess: Sendable {
    let server: ServerProcess

    static var binary: String {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("qarax-control").path
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/qarax-control").path
    }

    init(dir: TempDir, run: Int) throws {
        server = try ServerProcess(executable: Self.binary,
                                   arguments: ["serve", "--db", dir.path + "/q.db", "--api", "127.0.0.1:0"],
                                   logPath: dir.path + "/serve-\(run).log", readyPrefix: "qarax-control ready:")
    }

    /// The API port from the daemon's ready line.
    func port() async throws -> Int? {
        let line = try await server.readyLine(timeout: .seconds(60))
        guard let range = line.range(of: "API listening on http://127.0.0.1:") else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    func signal(_ signal: Int32) { kill(server.pid, signal) }

    /// The signal that ended the process, or its exit code.
    func waitForExit() async -> Int32 {
        let status = await server.waitForExit()
        let signal = status & 0x7f
        return signal != 0 ? signal : (status >> 8) & 0xff
    }

    /// The exit status once the process has exited within `deadline`, else nil.
    func exitStatus(within deadline: Duration) async throws -> Int32? {
        try await within(deadline) { await self.waitForExit() }
    }
}

@Suite("Crash recovery", .serialized)
struct CrashRecoveryTests {
    static func client(port: Int, dir: TempDir) throws -> ControlClient {
        ControlClient(try ClientConfiguration.resolve(endpoint: "http://127.0.0.1:\(port)", token: nil,
                                                      tokenFile: dir.path + "/q.db.token", environment: [:],
                                                      configDirectory: dir.path + "/none"))
    }

    static func json(_ data: Data) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    @Test func killNineLosesNoCommittedRowAndSettlesOperations() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        // Files to measure. The first is 4 GiB (sparse, so it costs no disk): hashing it takes
        // seconds even with SHA extensions, so the kill lands while it is being measured.
        var imagePaths: [String] = []
        for i in 0..<3 {
            let path = dir.path + "/image-\(i).bin"
            var bytes = [UInt8](repeating: 0, count: 4 << 20)
            for j in stride(from: 0, to: bytes.count, by: 4096) { bytes[j] = UInt8(truncatingIfNeeded: j / 4096 + i) }
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            if i == 0 {
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                try handle.truncate(atOffset: 4 << 30)
                try handle.close()
            }
            imagePaths.append(path)
        }

        let first = try DaemonProcess(dir: dir, run: 1)
        var killed = false
        defer { if !killed { first.signal(SIGKILL) } }
        let port = try #require(try await first.port())
        let client = try Self.client(port: port, dir: dir)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: dir.path + "/q.db.token")[.posixPermissions] as? Int)
        #expect(mode == 0o600)

        // Committed before the crash: every 2xx answer below.
        let encoder = JSONEncoder()
        _ = try await client.send("POST", "/v1/nodes", json: try encoder.encode(RegisterNodeBody(name: "n1", address: "10.0.0.1:7701")))
        _ = try await client.send("POST", "/v1/networks", json: try encoder.encode(
            CreateNetworkBody(name: "prod", node: "n1", kind: .bridge, parent: "br0")))
        var vmNames: [String] = []
        for i in 0..<10 {
            let body = CreateVMBody(spec: sampleSpec("vm\(i)"))
            _ = try await client.send("POST", "/v1/vms", json: try encoder.encode(body), idempotencyKey: "create-\(i)")
            vmNames.append("vm\(i)")
        }
        _ = try await client.send("DELETE", "/v1/vms/vm9")
        vmNames.removeLast()
        var imageOps: [String] = []
        for (i, path) in imagePaths.enumerated() {
            let data = try await client.send("POST", "/v1/images", json: try encoder.encode(
                ImageAddRequest(name: "img\(i)", kind: .disk, path: path)), idempotencyKey: "image-\(i)")
            imageOps.append(try #require(Self.json(data)["id"] as? String))
        }
        // Kill -9 while an image is being measured and more VM creations are in flight.
        let token = try String(contentsOfFile: dir.path + "/q.db.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let stream = try EventStreamReader(port: port, token: token)
        defer { stream.close() }
        let firstImage = imageOps[0]
        let started = try await within(.seconds(60)) { await stream.await("operation.started", for: [firstImage]) }
        #expect(started == [], "the first image measurement never started")
        let (twenty, reached) = AsyncStream.makeStream(of: Void.self)
        let inFlight = Task {
            var acknowledged: [String] = []
            for i in 100..<400 {
                do {
                    _ = try await client.send("POST", "/v1/vms", json: try encoder.encode(CreateVMBody(spec: sampleSpec("late\(i)"))))
                    acknowledged.append("late\(i)")
                    if acknowledged.count == 20 { reached.finish() }
                } catch {
                    break
                }
            }
            reached.finish()
            return acknowledged
        }
        for await _ in twenty {}
        first.signal(SIGKILL)
        killed = true
        #expect(await first.waitForExit() == SIGKILL)
        let acknowledged = await inFlight.value
        #expect(!acknowledged.isEmpty)

        // Restart on the same file.
        let second = try DaemonProcess(dir: dir, run: 2)
        defer { second.signal(SIGKILL) }
        let port2 = try #require(try await second.port())
        let after = try Self.client(port: port2, dir: dir)

        for name in vmNames + acknowledged {
            let vm = Self.json(try await after.send("GET", "/v1/vms/\(name)"))
            #expect(vm["name"] as? String == name)
        }
        await #expect(throws: ClientError.self) { try await after.send("GET", "/v1/vms/vm9") }
        let nodes = try JSONSerialization.jsonObject(with: try await after.send("GET", "/v1/nodes")) as? [[String: Any]]
        #expect(nodes?.map { $0["name"] as? String } == ["n1"])
        #expect(nodes?.first?["status"] as? String == "UNKNOWN")
        let networks = try JSONSerialization.jsonObject(with: try await after.send("GET", "/v1/networks")) as? [[String: Any]]
        #expect(networks?.count == 1)

        // The interrupted measurements resume and finish; a retry with the same key is the same operation.
        let token2 = try String(contentsOfFile: dir.path + "/q.db.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let stream2 = try EventStreamReader(port: port2, token: token2)
        defer { stream2.close() }
        let measured = imageOps
        let unfinished = try await within(.seconds(120)) { await stream2.await("operation.succeeded", for: measured) }
        #expect(unfinished == [], "image operations that did not finish")
        for (i, id) in imageOps.enumerated() {
            #expect(Self.json(try await after.send("GET", "/v1/operations/\(id)"))["status"] as? String == "succeeded",
                    "image operation \(i)")
            let retried = Self.json(try await after.send("POST", "/v1/images", json: try encoder.encode(
                ImageAddRequest(name: "img\(i)", kind: .disk, path: imagePaths[i])), idempotencyKey: "image-\(i)"))
            #expect(retried["id"] as? String == id)
        }
        let images = try JSONSerialization.jsonObject(with: try await after.send("GET", "/v1/images")) as? [[String: Any]]
        #expect(images?.count == 3)
        let retried = Self.json(try await after.send("POST", "/v1/vms", json: try encoder.encode(CreateVMBody(spec: sampleSpec("vm3"))),
                                                     idempotencyKey: "create-3"))
        #expect((retried["vm"] as? [String: Any])?["name"] as? String == "vm3")

        // Nothing is left running, and the file is sound.
        let metrics = String(decoding: try await after.send("GET", "/metrics"), as: UTF8.self)
        #expect(metrics.contains("qarax_operations{status=\"running\"} 0"))
        let events = String(decoding: try await after.send("GET", "/v1/events", query: ["follow": "false"]), as: UTF8.self)
        #expect(events.contains("event: control.start"))
        #expect(events.contains("event: operation.resumed"))

        second.signal(SIGTERM)
        #expect(try await second.exitStatus(within: .seconds(30)) == 0)
        let db = try InventoryDatabase(path: dir.path + "/q.db")
        #expect(try await db.pool.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") } == "ok")
    }
}
