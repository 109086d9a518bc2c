import CloudHypervisorAPI
import Foundation
import LinuxSys
public import NodeCore
import VMModel
#if canImport(Glibc)
import Glibc
#endif

/// What `qarax-bench boot` runs.
public struct BootBenchOptions: Sendable {
    public var vmm: VMMKind
    public var vmmBinary: String
    public var kernel: String
    public var initramfs: String?
    public var vcpus = 1
    public var memoryMiB = 256
    public var nics = 0
    public var hugepages = false
    public var concurrency: [Int] = [1]
    /// Measured boots per variant.
    public var count = 20
    /// Boots of each kind before measuring (not recorded).
    public var warmup = 2
    public var seed: UInt64 = 0x5EED
    public var deadline: Duration = .seconds(30)
    public var progress = true

    public init(vmm: VMMKind, vmmBinary: String, kernel: String) {
        self.vmm = vmm
        self.vmmBinary = vmmBinary
        self.kernel = kernel
    }

    /// The backend as the command line names it.
    public var vmmName: String { vmm == .qemu ? "qemu" : "cloud-hypervisor" }

    /// True when the binary is the cloud-hypervisor REST simulator.
    public var simulated: Bool { vmm == .cloudHypervisor && URL(fileURLWithPath: vmmBinary).lastPathComponent == "ch-sim" }

    /// Every problem with the options, naming the flag.
    public func problems() -> [String] {
        var problems: [String] = []
        if !FileManager.default.isExecutableFile(atPath: vmmBinary) { problems.append("--vmm-binary: \(vmmBinary) is not an executable file") }
        if !vmmBinary.hasPrefix("/") { problems.append("--vmm-binary: \(vmmBinary) must be an absolute path") }
        if !FileManager.default.isReadableFile(atPath: kernel) { problems.append("--kernel: \(kernel) is not a readable file (build it with scripts/guest-artifacts)") }
        if let initramfs, !FileManager.default.isReadableFile(atPath: initramfs) { problems.append("--initramfs: \(initramfs) is not a readable file") }
        if vcpus < 1 { problems.append("--vcpus: \(vcpus) must be at least 1") }
        if memoryMiB < 16 { problems.append("--memory: \(memoryMiB) MiB is below 16 MiB") }
        if nics < 0 || nics > 8 { problems.append("--nics: \(nics) is not within 0...8") }
        if count < 1 { problems.append("-n/--count: \(count) must be at least 1") }
        if warmup < 0 { problems.append("--warmup: \(warmup) must not be negative") }
        if concurrency.isEmpty || concurrency.contains(where: { $0 < 1 || $0 > 256 }) {
            problems.append("--concurrency: \(concurrency.map(String.init).joined(separator: ",")) must be levels within 1...256")
        }
        return problems
    }
}

/// Runs the boot benchmark: qarax boots and direct boots interleaved round by round, at each
/// concurrency level.
public struct BootBench: Sendable {
    public let options: BootBenchOptions
    /// Receives progress lines (without line ends).
    public let progress: @Sendable (String) -> Void

    public init(options: BootBenchOptions, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.progress = progress
    }

    /// Runs every variant and returns their runs (qarax then direct, per concurrency level).
    public func run() async throws -> [VariantRun] {
        let problems = options.problems()
        guard problems.isEmpty else { throw BenchError(problems.joined(separator: "\n")) }
        let tag = "qb" + String(getpid(), radix: 36)
        let scratch = "/tmp/qarax-bench-\(tag)"
        try FileManager.default.createDirectory(atPath: scratch + "/images", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        chmod(scratch, 0o755)
        chmod(scratch + "/images", 0o755)
        let kernel = try Self.copy(options.kernel, into: scratch + "/images")
        let initramfs = try options.initramfs.map { try Self.copy($0, into: scratch + "/images") }

        let namespace = try await NetworkNamespace.create(named: tag)
        defer { try? NetworkNamespace.delete(named: tag) }
        let configuration = NodeConfiguration(
            runtimeRoot: scratch + "/run", stateDirectory: scratch + "/state",
            pathPolicy: PathPolicy(imageRoots: [scratch + "/images"], diskRoots: [scratch + "/images"]),
            cgroupParent: "qarax-bench-\(tag)", networkNamespace: namespace,
            hugepages: HugepageSettings(autoReserve: options.hugepages),
            gracefulTimeout: .seconds(2), terminateTimeout: .seconds(2), killTimeout: .seconds(2))
        let backend: any VMMBackend = switch options.vmm {
        case .cloudHypervisor: try CloudHypervisorBackend(binary: options.vmmBinary)
        case .qemu: try QEMUBackend(binary: options.vmmBinary, powerdownGrace: .zero)
        }
        // QEMU as the node runs it has no exit device: the guest halts and the node stops it.
        let stopAfterMarker = options.vmm == .qemu
        let booter = try await QaraxBooter.open(configuration: configuration, backend: backend,
                                                stopAfterMarker: stopAfterMarker, deadline: options.deadline)
        defer { CgroupCleanup.remove(parent: configuration.cgroupParent) }
        let cmdline = "console=ttyS0" + (options.vmm == .cloudHypervisor ? " qarax.poweroff=1" : "")
        let payload = PayloadSpec(kernel: kernel, initramfs: initramfs, cmdline: cmdline)
        let options = self.options
        let spec: @Sendable (_ name: String, _ nics: Bool) -> VMSpec = { name, nics in
            VMSpec(name: name, cpus: CPUSpec(bootVCPUs: options.vcpus),
                   memory: MemorySpec(size: .mebibytes(options.memoryMiB), hugepages: nics && options.hugepages),
                   payload: payload,
                   nics: nics ? (0..<options.nics).map { NICSpec(id: "net\($0)", kind: .tap) } : [],
                   serial: ConsoleSpec(mode: .tty))
        }
        let direct = try directLauncher(spec: spec("direct", false), scratch: scratch)

        var serial = 0
        func nextName() -> String {
            serial += 1
            return "\(tag)-\(serial)"
        }
        do {
            for i in 0..<options.warmup {
                try Task.checkCancellation()
                progress("warm-up \(i + 1)/\(options.warmup)")
                _ = try await booter.boot(spec(nextName(), true))
                _ = try await direct.boot(index: serial)
            }
            var runs: [VariantRun] = []
            for level in options.concurrency {
                var qarax = VariantRun(kind: .qarax, vmm: options.vmmName, concurrency: level)
                var baseline = VariantRun(kind: .direct, vmm: options.vmmName, concurrency: level)
                var cpuTotal = 0.0
                var round = 0
                while qarax.samples.count < options.count {
                    try Task.checkCancellation()
                    let batch = min(level, options.count - qarax.samples.count)
                    let names = (0..<batch).map { _ in nextName() }
                    let first = serial
                    // Alternate which kind goes first, so neither always runs on a warmer machine.
                    for kind in round % 2 == 0 ? [VariantRun.Kind.qarax, .direct] : [.direct, .qarax] {
                        switch kind {
                        case .qarax:
                            let before = Self.cpuMilliseconds()
                            let samples = try await Self.concurrently(names) { name in try await booter.boot(spec(name, true)) }
                            cpuTotal += Self.cpuMilliseconds() - before
                            qarax.samples += samples
                        case .direct:
                            baseline.samples += try await Self.concurrently(Array(0..<batch)) { i in try await direct.boot(index: first + i) }
                        }
                    }
                    round += 1
                    let last = qarax.samples.last?.bootMilliseconds.map { String(format: "%.2f", $0) } ?? "–"
                    let lastDirect = baseline.samples.last?.bootMilliseconds.map { String(format: "%.2f", $0) } ?? "–"
                    progress("c=\(level): \(qarax.samples.count)/\(options.count) boots each · last qarax \(last) ms · direct \(lastDirect) ms")
                }
                qarax.nodeCPUMillisecondsPerVM = cpuTotal / Double(qarax.samples.count)
                runs += [qarax, baseline]
            }
            await booter.close()
            return runs
        } catch {
            await booter.close()
            throw error
        }
    }

    /// The baseline launcher for this VMM with the arguments the node would use.
    func directLauncher(spec: VMSpec, scratch: String) throws -> DirectLauncher {
        switch options.vmm {
        case .cloudHypervisor:
            let plan = try VmConfigTranslation.plan(for: spec, preparedNICs: [])
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let body = Array(try encoder.encode(plan.vmConfig))
            return DirectLauncher(binary: options.vmmBinary, arguments: ["--api-socket", "fd=3", "--seccomp", "true"],
                                  mode: .cloudHypervisor(createBody: body), terminateAfterMarker: false,
                                  scratchDirectory: scratch, deadline: options.deadline)
        case .qemu:
            let line = try QEMUCommandLine.build(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3, console: .stdout))
            return DirectLauncher(binary: options.vmmBinary, arguments: line.arguments, mode: .qemu,
                                  terminateAfterMarker: true, scratchDirectory: scratch, deadline: options.deadline)
        }
    }

    /// Runs `body` for every element at once; results in input order.
    static func concurrently<T: Sendable>(_ items: [T], _ body: @escaping @Sendable (T) async throws -> BootSample) async throws -> [BootSample] {
        try await withThrowingTaskGroup(of: (Int, BootSample).self) { group in
            for (index, item) in items.enumerated() {
                group.addTask { (index, try await body(item)) }
            }
            var results = [BootSample?](repeating: nil, count: items.count)
            for try await (index, sample) in group { results[index] = sample }
            return results.compactMap { $0 }
        }
    }

    /// User + system CPU time of this process, in ms.
    static func cpuMilliseconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func ms(_ t: timeval) -> Double { Double(t.tv_sec) * 1000 + Double(t.tv_usec) / 1000 }
        return ms(usage.ru_utime) + ms(usage.ru_stime)
    }

    static func copy(_ path: String, into directory: String) throws -> String {
        let target = directory + "/" + URL(fileURLWithPath: path).lastPathComponent
        try? FileManager.default.removeItem(atPath: target)
        try FileManager.default.copyItem(atPath: path, toPath: target)
        chmod(target, 0o644)
        return target
    }
}
