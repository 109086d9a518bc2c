// Node-side cost of a VM against the cloud-hypervisor simulator: create + boot (+ delete), one at
// a time and 32 at once. The simulator is a separate process, so getrusage(RUSAGE_SELF) is the
// node's own CPU. Needs root (cgroups, uid change). Run from Benchmarks/ after building ch-sim
// (`swift build -c release --product ch-sim` at the top level):
//   QARAX_CH_SIM=../.build/release/ch-sim swift package --allow-writing-to-package-directory benchmark --target NodeBenchmarks
import Benchmark
import Foundation
import Glibc
import LinuxSys
import NodeCore
import VMModel

private let concurrency = 32
private let directory = "/tmp/qx-node-bench-\(getpid())"

private func simulator() -> String {
    let path = ProcessInfo.processInfo.environment["QARAX_CH_SIM"] ?? FileManager.default.currentDirectoryPath + "/../.build/release/ch-sim"
    return URL(fileURLWithPath: path).standardizedFileURL.path
}

/// The node's user + system CPU time so far, in ns.
private func nodeCPU() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let user = Int(usage.ru_utime.tv_sec) * 1_000_000_000 + Int(usage.ru_utime.tv_usec) * 1000
    let system = Int(usage.ru_stime.tv_sec) * 1_000_000_000 + Int(usage.ru_stime.tv_usec) * 1000
    return user + system
}

private func nanoseconds(since start: ContinuousClock.Instant) -> Int {
    let elapsed = ContinuousClock.now - start
    return Int(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
}

/// One node for the whole run (as in the daemon): opened once, VMs made and deleted per iteration.
private final class Bench: Sendable {
    let node: NodeRuntime
    let kernel: String

    init() async throws {
        try FileManager.default.createDirectory(atPath: directory + "/images", withIntermediateDirectories: true)
        chmod(directory, 0o755)
        chmod(directory + "/images", 0o755)
        kernel = directory + "/images/tiny-pvh.elf"
        let built = FileManager.default.currentDirectoryPath + "/../.cache/guest/tiny-pvh.elf"
        let bytes = FileManager.default.contents(atPath: built) ?? Data("\u{7f}ELF stand-in QARAX-GUEST-READY".utf8)
        try bytes.write(to: URL(fileURLWithPath: kernel))
        chmod(kernel, 0o644)
        let configuration = NodeConfiguration(
            runtimeRoot: directory + "/run", stateDirectory: directory + "/state",
            pathPolicy: PathPolicy(imageRoots: [directory + "/images"], diskRoots: [directory + "/images"]),
            cgroupParent: "qarax-bench")
        let backend = try CloudHypervisorBackend(binary: simulator())
        node = try await NodeRuntime.open(configuration: configuration, backend: backend).0
    }

    func spec(_ name: String) -> VMSpec {
        VMSpec(name: name, cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(64)),
               payload: PayloadSpec(kernel: kernel, cmdline: "console=ttyS0"), serial: ConsoleSpec(mode: .tty))
    }

    func createAndBoot(_ name: String) async throws -> VMInstance {
        let vm = try await node.create(spec(name))
        try await vm.start()
        return vm
    }
}

private nonisolated(unsafe) var bench: Bench?
private nonisolated(unsafe) var serial = 0

private func nextName() -> String {
    serial += 1
    return "bench-\(serial)"
}

private let cpuBoot = BenchmarkMetric.custom("node CPU µs per VM, create+boot", useScalingFactor: false)
private let cpuCycle = BenchmarkMetric.custom("node CPU µs per VM, create+boot+delete", useScalingFactor: false)
private let wallBoot = BenchmarkMetric.custom("wall µs per VM, create+boot", useScalingFactor: false)
private let wallCycle = BenchmarkMetric.custom("wall µs per VM, create+boot+delete", useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [cpuBoot, cpuCycle, wallBoot, wallCycle], timeUnits: .microseconds, warmupIterations: 3,
        maxDuration: .seconds(10), maxIterations: 200
    )
    Benchmark.setup = {
        do { bench = try await Bench() } catch { fatalError("node benchmark setup: \(error)") }
    }
    Benchmark.teardown = {
        try? FileManager.default.removeItem(atPath: directory)
    }

    Benchmark("create+boot+delete ×1") { benchmark async in
        guard let bench else { return }
        for _ in benchmark.scaledIterations {
            let cpu0 = nodeCPU()
            let start = ContinuousClock.now
            do {
                let vm = try await bench.createAndBoot(nextName())
                let cpu1 = nodeCPU()
                benchmark.measurement(wallBoot, nanoseconds(since: start) / 1000)
                try await bench.node.delete(vm.id)
                benchmark.measurement(cpuBoot, (cpu1 - cpu0) / 1000)
            } catch {
                fatalError("benchmark VM: \(error)")
            }
            benchmark.measurement(cpuCycle, (nodeCPU() - cpu0) / 1000)
            benchmark.measurement(wallCycle, nanoseconds(since: start) / 1000)
        }
    }

    Benchmark("create+boot+delete ×\(concurrency) concurrent",
              configuration: .init(metrics: [cpuBoot, cpuCycle, wallBoot, wallCycle], timeUnits: .microseconds,
                                   warmupIterations: 1, maxDuration: .seconds(15), maxIterations: 30)) { benchmark async in
        guard let bench else { return }
        for _ in benchmark.scaledIterations {
            let names = (0..<concurrency).map { _ in nextName() }
            let cpu0 = nodeCPU()
            let start = ContinuousClock.now
            do {
                let ids = try await withThrowingTaskGroup(of: String.self) { group in
                    for name in names { group.addTask { try await bench.createAndBoot(name).id } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let cpu1 = nodeCPU()
                benchmark.measurement(wallBoot, nanoseconds(since: start) / 1000 / concurrency)
                benchmark.measurement(cpuBoot, (cpu1 - cpu0) / 1000 / concurrency)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for id in ids { group.addTask { try await bench.node.delete(id) } }
                    try await group.waitForAll()
                }
            } catch {
                fatalError("benchmark VMs: \(error)")
            }
            benchmark.measurement(cpuCycle, (nodeCPU() - cpu0) / 1000 / concurrency)
            benchmark.measurement(wallCycle, nanoseconds(since: start) / 1000 / concurrency)
        }
    }
}
