import Foundation

/// How the command-line client prints what the node answered.
public enum NodeOutput {
    /// A table of VMs: NAME, STATE, BACKEND, PID, VCPUS, MEMORY, NICS, DISKS.
    public static func table(_ reports: [VMReport]) -> String {
        var rows = [["NAME", "STATE", "BACKEND", "PID", "VCPUS", "MEMORY", "NICS", "DISKS"]]
        for report in reports {
            rows.append([report.name, report.state, report.backend, report.pid.map(String.init) ?? "-",
                         "\(report.vcpus)", "\(report.memoryBytes >> 20)M", "\(report.nics)", "\(report.disks)"])
        }
        return render(rows)
    }

    /// One VM as a two-column table of its fields.
    public static func details(_ report: VMReport) -> String {
        var rows: [[String]] = [
            ["NAME", report.name], ["ID", report.id], ["STATE", report.state], ["BACKEND", report.backend],
            ["PID", report.pid.map(String.init) ?? "-"], ["VMM STATE", report.vmmState ?? "-"],
            ["VCPUS", "\(report.vcpus)"], ["MEMORY", "\(report.memoryBytes >> 20)M"],
            ["NICS", "\(report.nics)"], ["DISKS", "\(report.disks)"],
            ["RUNTIME DIR", report.runtimeDirectory], ["SERIAL LOG", report.serialLog],
        ]
        if let failure = report.failure { rows.insert(["FAILURE", failure], at: 3) }
        return render(rows)
    }

    /// Pretty JSON with sorted keys.
    public static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// A refusal from the node, one problem per line with its field path.
    public static func error(_ error: NodeServiceError) -> String {
        guard !error.problems.isEmpty else { return "error: \(error.message)" }
        return (["error: \(error.message):"] + error.problems.map { "  \($0.field): \($0.reason)" }).joined(separator: "\n")
    }

    static func render(_ rows: [[String]]) -> String {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    /// Parses `30s`, `500ms`, `2m`, or plain seconds (`30`).
    public static func duration(_ text: String, flag: String) throws(FlagError) -> Duration {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let value = Double(text.dropLast(suffix.count)), value >= 0 {
                return .milliseconds(Int64((value * scale * 1000).rounded()))
            }
        }
        throw FlagError(flag: flag, value: text, reason: "is not a duration (e.g. 30s, 500ms, 2m)")
    }
}
