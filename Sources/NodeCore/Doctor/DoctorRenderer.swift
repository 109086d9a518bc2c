import Foundation

/// Turns a `DoctorReport` into the text an operator reads or the JSON a tool parses.
public enum DoctorRenderer {
    /// One aligned line per check, `✓` passed, `✗` a required check failed, `!` an optional one
    /// failed; a `fix:` line under every failure; a closing verdict.
    public static func text(_ report: DoctorReport) -> String {
        let width = report.results.map(\.check.key.count).max() ?? 0
        var lines = ["qarax-node doctor: host readiness", ""]
        for result in report.results {
            let mark = result.passed ? "✓" : (result.isRequired ? "✗" : "!")
            let name = result.check.key.padding(toLength: width, withPad: " ", startingAt: 0)
            lines.append("\(mark) \(name)  \(result.summary)")
            if !result.passed, let fix = result.fix {
                lines.append("  " + String(repeating: " ", count: width) + "  fix: \(fix)")
            }
        }
        lines.append("")
        if report.ready {
            let optional = report.failedOptional.map(\.key)
            lines.append("ready: this host can run VMs" + (optional.isEmpty ? "" : " (optional missing: \(optional.joined(separator: ", ")))"))
        } else {
            lines.append("not ready: \(report.failedRequired.map(\.key).joined(separator: ", ")) failed; see the fix lines above")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A single JSON object: `"ready"`, one boolean per check (by key), `"details"` per check, and
    /// `"checks"` with each check's summary, requirement and fix. Keys sorted, so output is stable.
    public static func json(_ report: DoctorReport) throws -> String {
        var object: [String: DoctorValue] = ["ready": .bool(report.ready)]
        var details: [String: DoctorValue] = [:]
        var checks: [DoctorValue] = []
        for result in report.results {
            object[result.check.key] = .bool(result.passed)
            details[result.check.key] = .object(result.details)
            var entry: [String: DoctorValue] = [
                "name": .string(result.check.key),
                "passed": .bool(result.passed),
                "required": .bool(result.isRequired),
                "summary": .string(result.summary),
            ]
            if let fix = result.fix { entry["fix"] = .string(fix) }
            checks.append(.object(entry))
        }
        object["details"] = .object(details)
        object["checks"] = .array(checks)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(DoctorValue.object(object)), as: UTF8.self) + "\n"
    }
}
