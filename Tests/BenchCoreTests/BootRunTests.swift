import BenchCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum BenchEnvironment {
    static let isRoot = getuid() == 0
    static let hasKVM = access("/dev/kvm", R_OK | W_OK) == 0
    static let qemu = "/usr/bin/qemu-system-x86_64"
    static let hasQEMU = FileManager.default.isExecutableFile(atPath: qemu)

    /// A build product next to the test bundle (`qarax-bench`, `ch-sim`).
    static func product(_ name: String) -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while dir.path != "/" && !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent(name).path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent(name).path
    }

    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static var tinyGuest: String { packageRoot.appendingPathComponent(".cache/guest/tiny-pvh.elf").path }
    static var hasTinyGuest: Bool { FileManager.default.isReadableFile(atPath: tinyGuest) }
}

/// The real `qarax-bench boot` binary, two boots per variant: the report has every field and each
/// boot's points are in order. No timing assertions.
@Suite("qarax-bench boot, for real", .serialized)
struct BootRunTests {
    func run(_ arguments: [String]) throws -> (report: Data, samples: Data) {
        let output = "/tmp/qarax-bench-test-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BenchEnvironment.product("qarax-bench"))
        process.arguments = ["boot"] + arguments + ["-n", "2", "--warmup", "0", "--timeout", "20", "--quiet",
                                                    "--kernel", BenchEnvironment.tinyGuest, "--output", output]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(String(decoding: stderr, as: UTF8.self))")
        let report = try Data(contentsOf: URL(fileURLWithPath: output + "/report.json"))
        let samples = try Data(contentsOf: URL(fileURLWithPath: output + "/samples.json"))
        let svg = try String(contentsOfFile: output + "/report.svg", encoding: .utf8)
        #expect(svg.contains("data-variant=\"qarax"))
        #expect(FileManager.default.fileExists(atPath: output + "/report.md"))
        return (report, samples)
    }

    func checkOrder(_ samples: Data, variants: Int) throws {
        let all = try JSONDecoder().decode([String: [[String: Double]]].self, from: samples)
        #expect(all.count == variants)
        for (variant, boots) in all {
            #expect(boots.count == 2, "\(variant)")
            for boot in boots {
                var points: [BootPoint: Double] = [:]
                for (key, value) in boot {
                    let point = try #require(BootPoint(rawValue: key), "unknown point \(key)")
                    points[point] = value
                }
                let sample = BootSample(points: points)
                #expect(sample.outOfOrder.isEmpty, "\(variant): \(boot)")
                #expect(sample.bootMilliseconds != nil, "\(variant): no ready marker")
                #expect(points[.shutdownComplete] != nil, "\(variant): no shutdown")
                if variant.hasPrefix("qarax") {
                    for point in BootSample.sequence { #expect(points[point] != nil, "\(variant): no \(point)") }
                }
            }
        }
    }

    @Test("QEMU under KVM", .enabled(if: BenchEnvironment.isRoot, "needs root (jailed VMMs, cgroups, netns)"),
          .enabled(if: BenchEnvironment.hasKVM, "needs /dev/kvm"),
          .enabled(if: BenchEnvironment.hasQEMU, "needs qemu-system-x86_64"),
          .enabled(if: BenchEnvironment.hasTinyGuest, "needs scripts/guest-artifacts"))
    func qemu() throws {
        let (report, samples) = try run(["--vmm", "qemu"])
        try ReportChecks.checkFields(report)
        try checkOrder(samples, variants: 2)
    }

    @Test("ch-sim (the cloud-hypervisor REST simulator), two concurrency levels",
          .enabled(if: BenchEnvironment.isRoot, "needs root (jailed VMMs, cgroups, netns)"),
          .enabled(if: BenchEnvironment.hasTinyGuest, "needs scripts/guest-artifacts"))
    func chSim() throws {
        let (report, samples) = try run(["--vmm", "cloud-hypervisor", "--vmm-binary", BenchEnvironment.product("ch-sim"),
                                         "--concurrency", "1,2"])
        try ReportChecks.checkFields(report)
        let object = try #require(try JSONSerialization.jsonObject(with: report) as? [String: Any])
        #expect(object["simulated_vmm"] as? Bool == true)
        try checkOrder(samples, variants: 4)
    }
}
