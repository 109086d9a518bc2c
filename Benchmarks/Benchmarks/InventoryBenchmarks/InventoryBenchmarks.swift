// The control daemon's inventory: API writes (a transaction and the group-commit flush), placement
// across 1,000 live nodes, and a listing read — beside a bare SQLite baseline in the same run:
// one row per transaction with `synchronous = FULL` (SQLite's own per-commit flush), the cost
// group commit exists to share. Run from Benchmarks/:
//   swift package --allow-writing-to-package-directory benchmark --target InventoryBenchmarks
import Benchmark
import ControlCore
import Foundation
import GRDB
import VMModel

private let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qx-inventory-bench-\(getpid())").path
private let concurrency = 32
private let nodeCount = 1000

/// A node that is connected, alive and does what it is told at once.
private final class BenchLink: NodeLink {
    let hello: NodeHello
    let events: AsyncStream<NodeEvent>

    init(name: String) {
        hello = NodeHello(name: name, address: "10.0.0.1:7701", protocolVersion: 1,
                          inventory: NodeInventory(hostname: name, cpus: 64, memoryBytes: 256 << 30, hugepages: [], kvm: true,
                                                   vmms: [.init(backend: .cloudHypervisor, version: "48.0")], nodeVersion: "bench"),
                          vms: [])
        events = AsyncStream { _ in }
    }

    func call(_ request: NodeRequest) async throws -> NodeReply {
        switch request {
        case .createVM, .startVM, .resumeVM, .rebootVM: .done(.running)
        case .stopVM: .done(.stopped)
        case .pauseVM: .done(.paused)
        case .listVMs: .vms([])
        case .consoleTail: .console([])
        case .deleteVM, .addNIC, .addDisk: .done(nil)
        }
    }
}

private struct Fixture {
    let service: ControlService
    let links: [Task<Void, Never>]
    let listed: ControlService
    let baseline: DatabasePool
}

private nonisolated(unsafe) var fixture: Fixture?
private nonisolated(unsafe) var serial = 0

private func nextName() -> String {
    serial += 1
    return "vm-\(serial)"
}

private func spec(_ name: String) -> VMSpec {
    VMSpec(name: name, cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(256)),
           payload: PayloadSpec(kernel: "/var/lib/qarax/vmlinux"))
}

private func makeFixture() async throws -> Fixture {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let service = ControlService(database: try InventoryDatabase(path: directory + "/placement.db"))
    let links = (0..<nodeCount).map { index in
        Task { _ = try? await service.serve(link: BenchLink(name: "node-\(index)")) }
    }
    while await service.registry.aliveNodes.count < nodeCount { await Task.yield() }
    // A second inventory with 10,000 VMs for the listing.
    let listed = ControlService(database: try InventoryDatabase(path: directory + "/listing.db"))
    try await withThrowingTaskGroup(of: Void.self) { group in
        for batch in 0..<100 {
            group.addTask {
                for i in 0..<100 { _ = try await listed.createVM(CreateVMBody(spec: spec("list-\(batch)-\(i)")), idempotencyKey: nil) }
            }
        }
        try await group.waitForAll()
    }
    var configuration = Configuration()
    configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    let baseline = try DatabasePool(path: directory + "/baseline.db", configuration: configuration)
    try await baseline.write { db in
        try db.execute(sql: "CREATE TABLE rows (id INTEGER PRIMARY KEY, name TEXT NOT NULL, body TEXT NOT NULL)")
    }
    return Fixture(service: service, links: links, listed: listed, baseline: baseline)
}

private func baselineInsert(_ pool: DatabasePool) async throws {
    let name = nextName()
    try await pool.write { db in
        try db.execute(sql: "INSERT INTO rows (name, body) VALUES (?, ?)", arguments: [name, String(repeating: "x", count: 400)])
    }
}

private let perWrite = BenchmarkMetric.custom("µs per write", useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal], timeUnits: .microseconds,
                                           warmupIterations: 5, maxDuration: .seconds(5), maxIterations: 2000)
    Benchmark.setup = {
        do { fixture = try await makeFixture() } catch { fatalError("inventory benchmark setup: \(error)") }
    }
    Benchmark.teardown = {
        fixture?.links.forEach { $0.cancel() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    Benchmark("createVM (API write + flush) ×1") { benchmark async in
        guard let service = fixture?.service else { return }
        for _ in benchmark.scaledIterations {
            do { _ = try await service.createVM(CreateVMBody(spec: spec(nextName())), idempotencyKey: nil) } catch {
                fatalError("createVM: \(error)")
            }
        }
    }

    Benchmark("baseline: SQLite FULL, one row per transaction ×1") { benchmark async in
        guard let pool = fixture?.baseline else { return }
        for _ in benchmark.scaledIterations {
            do { try await baselineInsert(pool) } catch { fatalError("baseline insert: \(error)") }
        }
    }

    let concurrent = Benchmark.Configuration(metrics: [.wallClock, perWrite], timeUnits: .microseconds, warmupIterations: 1,
                                             maxDuration: .seconds(8), maxIterations: 100)
    Benchmark("createVM ×\(concurrency) concurrent", configuration: concurrent) { benchmark async in
        guard let service = fixture?.service else { return }
        for _ in benchmark.scaledIterations {
            let names = (0..<concurrency).map { _ in nextName() }
            let start = ContinuousClock.now
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for name in names { group.addTask { _ = try await service.createVM(CreateVMBody(spec: spec(name)), idempotencyKey: nil) } }
                    try await group.waitForAll()
                }
            } catch {
                fatalError("createVM: \(error)")
            }
            let (seconds, attoseconds) = (ContinuousClock.now - start).components
            benchmark.measurement(perWrite, Int((Double(seconds) * 1e6 + Double(attoseconds) / 1e12) / Double(concurrency)))
        }
    }

    Benchmark("baseline: SQLite FULL ×\(concurrency) concurrent", configuration: concurrent) { benchmark async in
        guard let pool = fixture?.baseline else { return }
        for _ in benchmark.scaledIterations {
            let start = ContinuousClock.now
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<concurrency { group.addTask { try await baselineInsert(pool) } }
                    try await group.waitForAll()
                }
            } catch {
                fatalError("baseline insert: \(error)")
            }
            let (seconds, attoseconds) = (ContinuousClock.now - start).components
            benchmark.measurement(perWrite, Int((Double(seconds) * 1e6 + Double(attoseconds) / 1e12) / Double(concurrency)))
        }
    }

    Benchmark("start (placement among \(nodeCount) live nodes) + stop + delete") { benchmark async in
        guard let service = fixture?.service else { return }
        for _ in benchmark.scaledIterations {
            do {
                let (vm, _) = try await service.createVM(CreateVMBody(spec: spec(nextName())), idempotencyKey: nil)
                benchmark.startMeasurement()
                _ = try await service.act(vm.id, .start, idempotencyKey: nil)
                benchmark.stopMeasurement()
                _ = try await service.act(vm.id, .stop, idempotencyKey: nil)
                _ = try await service.deleteVM(vm.id, idempotencyKey: nil)
            } catch {
                fatalError("start: \(error)")
            }
        }
    }

    Benchmark("list VMs: a page of 100 of 10,000") { benchmark async in
        guard let service = fixture?.listed else { return }
        for _ in benchmark.scaledIterations {
            do { _ = try await service.listVMs(VMFilter(namePrefix: "list-5", limit: 100)) } catch { fatalError("list: \(error)") }
        }
    }
}
