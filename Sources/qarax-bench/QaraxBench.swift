import ArgumentParser
import Dispatch
import BenchCore
import Foundation
import NodeCore
import VMModel
#if canImport(Glibc)
import Glibc
#endif

/// `qarax-bench`: qarax's benchmark harness.
@main
struct QaraxBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qarax-bench",
        abstract: "Measure qarax: VM boot latency by phase against a direct VMM launch, and control-plane scale.",
        subcommands: [Boot.self, Control.self, DiscardServerCommand.self])

    /// The directory of this executable (its siblings: qarax-control, ch-sim).
    static func executableDirectory() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }

    static func hostDescription() -> String {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "Linux \(release), \(ProcessInfo.processInfo.activeProcessorCount) CPUs"
    }

    /// Runs `work`; Ctrl-C or SIGTERM cancels it, so it can still clean up.
    static func cancellable<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await work() }
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let stops = [SIGINT, SIGTERM].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { task.cancel() }
            source.resume()
            return source
        }
        defer { stops.forEach { $0.cancel() } }
        return try await task.value
    }
}

enum VMMChoice: String, ExpressibleByArgument, CaseIterable {
    case cloudHypervisor = "cloud-hypervisor"
    case qemu
}

struct Boot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot VMs through the node path and directly, interleaved, and report boot time by phase.",
        discussion: """
        Each boot is timed on one monotonic clock from the request to the guest's ready marker on its \
        serial port, phase by phase, and the VMM's shutdown. The baseline starts the same VMM binary \
        with the same kernel and arguments by posix_spawn, without jail, host preparation or \
        supervision. With --vmm cloud-hypervisor the default binary is ch-sim, the REST simulator \
        (not a VMM): pass a real cloud-hypervisor with --vmm-binary. Needs root.
        """)

    @Option(help: "VMM backend: cloud-hypervisor or qemu.")
    var vmm: VMMChoice = .cloudHypervisor
    @Option(name: .customLong("vmm-binary"), help: "VMM executable (default: ch-sim next to qarax-bench, /usr/bin/qemu-system-x86_64).")
    var vmmBinary: String?
    @Option(help: "Guest kernel (default: .cache/guest/tiny-pvh.elf from scripts/guest-artifacts).")
    var kernel: String?
    @Option(help: "Guest initramfs.")
    var initramfs: String?
    @Option(help: "vCPUs per VM.")
    var vcpus = 1
    @Option(help: "Guest memory in MiB.")
    var memory = 256
    @Option(help: "TAP NICs per VM (prepared by the node in a scratch network namespace).")
    var nics = 0
    @Flag(help: "Back guest memory with hugepages (reserved by the node as needed).")
    var hugepages = false
    @Option(help: "Concurrency levels, comma-separated, e.g. 1,8,32.")
    var concurrency = "1"
    @Option(name: [.customShort("n"), .customLong("count")], help: "Measured boots per variant and level.")
    var count = 20
    @Option(help: "Unrecorded boots of each kind first.")
    var warmup = 2
    @Option(help: "Seed of the bootstrap confidence intervals.")
    var seed: UInt64 = 0x5EED
    @Option(help: "Seconds one boot may take before it counts as failed.")
    var timeout = 30
    @Option(help: "Directory for report.md, report.json, report.svg and samples.json.")
    var output: String?
    @Flag(help: "No progress line.")
    var quiet = false

    func run() async throws {
        let levels = concurrency.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ $0 != nil }) else {
            throw ValidationError("--concurrency: '\(concurrency)' is not a comma-separated list of numbers")
        }
        let kind: VMMKind = vmm == .qemu ? .qemu : .cloudHypervisor
        var options = BootBenchOptions(vmm: kind, vmmBinary: vmmBinary ?? Self.defaultBinary(vmm),
                                       kernel: kernel ?? Self.defaultKernel())
        options.initramfs = initramfs
        options.vcpus = vcpus
        options.memoryMiB = memory
        options.nics = nics
        options.hugepages = hugepages
        options.concurrency = levels.compactMap { $0 }
        options.count = count
        options.warmup = warmup
        options.seed = seed
        options.deadline = .seconds(timeout)
        let problems = options.problems()
        guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "\n")) }
        guard getuid() == 0 else { throw ValidationError("qarax-bench boot needs root (jailed VMMs, cgroups, network namespaces)") }
        if options.simulated {
            FileHandle.standardError.write(Data("note: \(options.vmmBinary) is ch-sim, the cloud-hypervisor REST simulator, not a VMM\n".utf8))
        }
        let quiet = self.quiet
        let bench = BootBench(options: options) { line in
            guard !quiet else { return }
            FileHandle.standardError.write(Data("\r\u{1b}[K\(line)".utf8))
        }
        // Ctrl-C or SIGTERM ends the run after the boots in flight, so the scratch namespace,
        // cgroups and directories are still removed.
        let runs = try await QaraxBench.cancellable { try await bench.run() }
        if !quiet { FileHandle.standardError.write(Data("\r\u{1b}[K".utf8)) }
        let host = QaraxBench.hostDescription()
        let report = BootReport(runs: runs, vmm: vmm.rawValue, vmmBinary: options.vmmBinary, simulatedVMM: options.simulated,
                                kernel: options.kernel, host: host, seed: seed)
        let markdown = report.markdown()
        print(markdown)
        if let output {
            try ReportFiles.write(report: report, runs: runs, to: output)
            print("Written: \(output)/report.md, report.json, report.svg, samples.json")
        }
    }

    static func defaultBinary(_ vmm: VMMChoice) -> String {
        switch vmm {
        case .qemu: return "/usr/bin/qemu-system-x86_64"
        case .cloudHypervisor:
            return QaraxBench.executableDirectory() + "/ch-sim"
        }
    }

    /// `.cache/guest/tiny-pvh.elf` under the current directory or the package root above the binary.
    static func defaultKernel() -> String {
        let relative = ".cache/guest/tiny-pvh.elf"
        let cwd = FileManager.default.currentDirectoryPath + "/" + relative
        if FileManager.default.fileExists(atPath: cwd) { return cwd }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent(relative).path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return cwd
    }
}


