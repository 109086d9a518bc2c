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

/// Waits until `condition` holds or `deadline` passes (no fixed sleeps: yields between checks).
func eventually(within deadline: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws -> Bool {
    let end = ContinuousClock.now + deadline
    while ContinuousClock.now < end {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
