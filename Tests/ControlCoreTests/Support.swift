import Foundation
@testable import ControlCore
import VMModel

/// A fresh directory under /tmp, removed by `cleanup()`.
struct TempDir {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "qarax-control-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

func makeService(_ dir: TempDir, clock: ControlClock = .system, grace: Duration = .seconds(15)) throws -> ControlService {
    let db = try InventoryDatabase(path: dir.path + "/qarax.db")
    return ControlService(database: db, settings: ControlSettings(heartbeatGrace: grace), clock: clock)
}

func sampleSpec(_ name: String, vcpus: Int = 1, memory: ByteSize = .mebibytes(256)) -> VMSpec {
    VMSpec(name: name, cpus: CPUSpec(bootVCPUs: vcpus), memory: MemorySpec(size: memory),
           payload: PayloadSpec(kernel: "/var/lib/qarax/vmlinux"))
}

func sampleInventory(cpus: Int = 4, memory: Int = 8 << 30) -> NodeInventory {
    NodeInventory(hostname: "host", cpus: cpus, memoryBytes: memory,
                  hugepages: [.init(pageSize: 2 << 20, total: 512, free: 512)], kvm: true,
                  vmms: [.init(backend: .cloudHypervisor, version: "48.0")], nodeVersion: "0.1.0")
}

extension ControlService {
    /// Wakes on every committed audit event (node connected, VM state, operation finished…).
    var changes: AsyncStream<Void> {
        let events = self.events.subscribe()
        return AsyncStream { continuation in
            let forward = Task {
                for await _ in events { continuation.yield() }
                continuation.finish()
            }
            continuation.onTermination = { _ in forward.cancel() }
        }
    }
}

/// Checks `condition` now and again each time one of `sources` reports a change, until it holds
/// or `deadline` passes; returns whether it held. No polling: without a change nothing is re-read.
/// Subscribe the sources before acting, so no change is missed.
func eventually(within deadline: Duration = .seconds(20), wakeOn sources: [AsyncStream<Void>],
                _ condition: () async throws -> Bool) async throws -> Bool {
    let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let forwarders = sources.map { source in Task { for await _ in source { wake.yield() } } }
    let timer = Task {
        try? await Task.sleep(for: deadline) // allowed: deadline timer, not a wait
        wake.finish()
    }
    defer {
        forwarders.forEach { $0.cancel() }
        timer.cancel()
    }
    if try await condition() { return true }
    for await _ in wakes {
        if try await condition() { return true }
    }
    return try await condition()
}
