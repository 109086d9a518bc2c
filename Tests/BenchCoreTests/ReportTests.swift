import BenchCore
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

@Suite("Report rendering: markdown and JSON goldens, SVG")
struct ReportTests {
    /// Two variants with known boots: qarax is the direct boot plus 1 ms, at every point.
    static var runs: [VariantRun] {
        let direct = (0..<10).map { i -> BootSample in
            let t = 50 + Double(i)
            return BootSample(points: [.requestReceived: 0, .vmmSpawned: 1, .readyMarker: t, .shutdownComplete: t + 2])
        }
        let qarax = (0..<10).map { i -> BootSample in
            let t = 51 + Double(i)
            return BootSample(points: [.requestReceived: 0, .specValidated: 0.1, .hostPrepared: 0.5, .launchPlanned: 0.7, .vmmSpawned: 1.5, .supervised: 1.55,
                                       .apiReady: 1.6, .created: 2, .bootReturned: 3, .guestBooted: 2.9,
                                       .readyMarker: t, .shutdownComplete: t + 2])
        }
        return [VariantRun(kind: .qarax, vmm: "qemu", concurrency: 1, samples: qarax, nodeCPUMillisecondsPerVM: 0.8),
                VariantRun(kind: .direct, vmm: "qemu", concurrency: 1, samples: direct)]
    }

    static var report: BootReport {
        BootReport(runs: runs, vmm: "qemu", vmmBinary: "/usr/bin/qemu-system-x86_64", simulatedVMM: false,
                   kernel: "tiny-pvh.elf", host: "test host", seed: 42)
    }

    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    /// Compares with the golden file; `QARAX_UPDATE_GOLDEN=1` rewrites it instead.
    func matchGolden(_ text: String, _ name: String) throws {
        let url = Self.golden.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["QARAX_UPDATE_GOLDEN"] == "1" {
            try Data(text.utf8).write(to: url)
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(text == expected)
    }

    @Test("The overhead is the known 1 ms with a ratio and all goals met")
    func numbers() throws {
        let report = Self.report
        let qarax = try #require(report.variants.first { $0.kind == .qarax })
        #expect(qarax.p50Ms == 55.5)
        #expect(qarax.overheadMsP50 == 1)
        #expect(qarax.overheadMsP99 == 1)
        #expect(qarax.overheadRatioP50 == ((55.5 / 54.5) * 10_000).rounded() / 10_000)
        #expect(qarax.baseline == "direct qemu c=1")
        #expect(qarax.phaseMediansMs["host_prepared"] == 0.4)
        #expect(report.verdict.count == 4)
        #expect(report.verdict.filter { $0.goal != "overhead ratio p50" }.allSatisfy { $0.met == true })
        #expect(report.verdict.first { $0.goal == "overhead ratio p50" }?.met == true)
    }

    @Test("Markdown matches the golden file")
    func markdown() throws {
        try matchGolden(Self.report.markdown(), "report.md")
    }

    @Test("JSON matches the golden file and has every field the issue names")
    func json() throws {
        let data = try Self.report.json()
        try matchGolden(String(decoding: data, as: UTF8.self), "report.json")
        try ReportChecks.checkFields(data)
    }

    @Test("The SVG is well-formed XML with one CDF series per variant and phase bars")
    func svg() throws {
        let svg = SVGChart.render(runs: Self.runs, report: Self.report)
        let parser = XMLParser(data: Data(svg.utf8))
        let collector = SVGCollector()
        parser.delegate = collector
        #expect(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
        #expect(collector.series == ["qarax qemu c=1", "direct qemu c=1"])
        #expect(collector.phases.contains("qarax qemu c=1/host_prepared"))
        #expect(collector.phases.contains("direct qemu c=1/ready_marker"))
    }
}

final class SVGCollector: NSObject, XMLParserDelegate {
    var series: [String] = []
    var phases: Set<String> = []

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if name == "polyline", attributes["class"] == "series", let variant = attributes["data-variant"] { series.append(variant) }
        if name == "rect", attributes["class"] == "phase", let v = attributes["data-variant"], let p = attributes["data-phase"] {
            phases.insert("\(v)/\(p)")
        }
    }
}

/// Checks shared by the golden and the real runs.
enum ReportChecks {
    struct Missing: Error, CustomStringConvertible {
        let description: String
    }

    static func checkFields(_ data: Data) throws {
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let variants = try #require(object["variants"] as? [[String: Any]])
        #expect(!variants.isEmpty)
        for variant in variants {
            for key in ["name", "kind", "vmm", "concurrency", "boots", "p50_ms", "p90_ms", "p99_ms", "phase_medians_ms"] {
                #expect(variant[key] != nil, "\(variant["name"] ?? "?") lacks \(key)")
            }
            let phases = try #require(variant["phase_medians_ms"] as? [String: Double])
            #expect(phases["ready_marker"] != nil && phases["vmm_spawned"] != nil)
            if variant["kind"] as? String == "qarax" {
                for key in ["overhead_ms_p50", "overhead_ms_p99", "overhead_ratio_p50", "node_cpu_ms_per_vm", "baseline"] {
                    #expect(variant[key] != nil, "\(variant["name"] ?? "?") lacks \(key)")
                }
                for key in ["spec_validated", "host_prepared", "launch_planned", "supervised", "api_ready", "created", "boot_returned", "shutdown_complete"] {
                    #expect(phases[key] != nil, "\(variant["name"] ?? "?") lacks phase \(key)")
                }
            }
        }
        #expect(object["verdict"] as? [[String: Any]] != nil)
        #expect(object["simulated_vmm"] as? Bool != nil)
    }
}
