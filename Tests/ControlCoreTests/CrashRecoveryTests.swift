import Foundation
import Synchronization
import Testing
@testable import ControlCore
import VMModel
#if canImport(Glibc)
import Glibc
#endif

/// The real `qarax-control serve` binary on a temporary inventory.
final class DaemonProcess: @unchecked Sendable {
    // @unchecked: `process` is only touched from the test's task; Process itself is thread-safe for
    // the calls used (run, processIdentifier, terminationHandler).
    let process = Process()
    let logPath: String
    private let status = Mutex<Int32?>(nil)
    private let exited: AsyncStream<Int32>
    private let exitContinuation: AsyncStream<Int32>.Continuation

    static var binary: String {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("qarax-control").path
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/qarax-control").path
    }

    init(dir: TempDir, run: Int) throws {
        logPath = dir.path + "/serve-\(run).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--db", dir.path + "/q.db", "--api", "127.0.0.1:0"]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardError = log
        process.standardOutput = log
        (exited, exitContinuation) = AsyncStream.makeStream(of: Int32.self)
        let continuation = exitContinuation
        process.terminationHandler = { [weak self] process in
            self?.status.withLock { $0 = process.terminationStatus }
            continuation.yield(process.terminationStatus)
            continuation.finish()
        }
        try process.run()
    }

    /// The API port, once the daemon logged it.
    func port() async throws -> Int? {
        var found: Int?
        _ = try await eventually(within: .seconds(60)) {
            let text = String(decoding: FileManager.default.contents(atPath: logPath) ?? Data(), as: UTF8.self)
            guard let range = text.range(of: "API listening on http://127.0.0.1:") else { return false }
            found = Int(text[range.upperBound...].prefix { $0.isNumber })
            return found != nil
        }
        return found
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the exit status.
    func waitForExit() async -> Int32? {
        for await status in exited { return status }
        return status.withLock { $0 }
    }

    /// The exit status once the process has exited within `deadline`, else nil.
    func exitStatus(within deadline: Duration) async throws -> Int32? {
        _ = try await eventually(within: deadline) { status.withLock { $0 } != nil }
        return status.withLock { $0 }
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
        // Files to measure: long enough that the kill lands while one is being hashed.
        var imagePaths: [String] = []
        for i in 0..<3 {
            let path = dir.path + "/image-\(i).bin"
            var bytes = [UInt8](repeating: 0, count: (i == 0 ? 32 : 4) << 20)
            for j in stride(from: 0, to: bytes.count, by: 4096) { bytes[j] = UInt8(truncatingIfNeeded: j / 4096 + i) }
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
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
        #expect(try await eventually(within: .seconds(60)) {
            let op = Self.json(try await client.send("GET", "/v1/operations/\(imageOps[0])"))
            return op["status"] as? String == "running"
        })
        let inFlight = Task {
            var acknowledged: [String] = []
            for i in 100..<400 {
                do {
                    _ = try await client.send("POST", "/v1/vms", json: try encoder.encode(CreateVMBody(spec: sampleSpec("late\(i)"))))
                    acknowledged.append("late\(i)")
                } catch {
                    break
                }
            }
            return acknowledged
        }
        #expect(try await eventually {
            let page = Self.json(try await client.send("GET", "/v1/vms", query: ["name_prefix": "late", "limit": "50"]))
            return (page["items"] as? [Any])?.count ?? 0 >= 20
        })
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
        for (i, id) in imageOps.enumerated() {
            #expect(try await eventually(within: .seconds(120)) {
                Self.json(try await after.send("GET", "/v1/operations/\(id)"))["status"] as? String == "succeeded"
            }, "image operation \(i)")
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
