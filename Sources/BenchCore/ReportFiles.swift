public import Foundation

/// Writes a boot report's files into a directory.
public enum ReportFiles {
    /// `report.md`, `report.json`, `report.svg` and `samples.json` (every boot's points) in `directory`.
    public static func write(report: BootReport, runs: [VariantRun], to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let url = URL(fileURLWithPath: directory)
        try Data(report.markdown().utf8).write(to: url.appendingPathComponent("report.md"))
        try report.json().write(to: url.appendingPathComponent("report.json"))
        try Data(SVGChart.render(runs: runs, report: report).utf8).write(to: url.appendingPathComponent("report.svg"))
        try samplesJSON(runs).write(to: url.appendingPathComponent("samples.json"))
    }

    /// Every boot, per variant: `{"variant": [{"point": ms, …}, …]}`.
    public static func samplesJSON(_ runs: [VariantRun]) throws -> Data {
        var all: [String: [[String: Double]]] = [:]
        for run in runs {
            all[run.name] = run.samples.map { sample in
                Dictionary(uniqueKeysWithValues: sample.points.map { ($0.key.rawValue, $0.value) })
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(all)
    }
}
