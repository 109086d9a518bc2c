#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials

/// Operator-supplied seccomp policies, as JSON:
///
/// ```json
/// {"default_action": "errno",
///  "rules": [{"syscall": "read", "reason": "guest I/O"},
///            {"syscall": "socket", "reason": "unix sockets only",
///             "args": [{"index": 0, "op": "eq", "value": 1}]},
///            {"syscall": "clone3", "reason": "libc falls back to clone", "errno": 38}]}
/// ```
/// `default_action` is `errno` (EPERM) or `kill`; `op` is one of `eq ne lt le gt ge masked_eq`
/// (`masked_eq` takes a `mask`); numbers may also be written as strings, `"0xc008ae05"`. Unknown
/// keys, unknown syscalls and wrong types are errors naming the field.
extension SeccompPolicy {
    /// Reads and checks a policy file; syscall names are resolved too, so a typo fails here.
    public static func load(contentsOf path: String) throws(SeccompPolicyError) -> SeccompPolicy {
        let text: String
        do {
            text = try readProcFile(path, limit: 4 << 20)
        } catch {
            throw .unreadable(path: path, reason: error.description)
        }
        let policy = try parse(json: text, source: path)
        _ = try policy.compile()
        return policy
    }

    /// Parses the JSON form without resolving syscall names (see `load`).
    public static func parse(json: String, source: String = "<inline>") throws(SeccompPolicyError) -> SeccompPolicy {
        let root: JSONValue
        do {
            root = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        } catch {
            throw .unreadable(path: source, reason: "not valid JSON: \(error)")
        }
        var issues: [FieldIssue] = []
        var defaultAction = DefaultAction.errno
        var rules: [SeccompRule] = []

        if let object = root.object(at: "policy", issues: &issues) {
            issues += object.unknownKeys(allowed: ["default_action", "rules"], at: "")
            if let name = object["default_action"]?.string(at: "default_action", issues: &issues) {
                if let action = DefaultAction(rawValue: name) {
                    defaultAction = action
                } else {
                    issues.append(FieldIssue(field: "default_action", value: "\"\(name)\"", reason: "is not one of errno, kill"))
                }
            } else if object["default_action"] == nil {
                issues.append(FieldIssue(field: "default_action", value: "missing", reason: "is required (errno or kill)"))
            }
            if let ruleValues = object["rules"]?.array(at: "rules", issues: &issues) {
                for (i, value) in ruleValues.enumerated() {
                    if let rule = parseRule(value, field: "rules[\(i)]", issues: &issues) { rules.append(rule) }
                }
            } else if object["rules"] == nil {
                issues.append(FieldIssue(field: "rules", value: "missing", reason: "is required"))
            }
        }
        if !issues.isEmpty { throw .invalid(issues) }
        let policy = SeccompPolicy(defaultAction: defaultAction, rules: rules)
        try policy.validate()
        return policy
    }

    /// The policy in the file format `load` reads, one rule per line: a starting point for an
    /// operator's own policy (`SeccompPolicy.vmmDefault.json`).
    public var json: String {
        let ruleLines = rules.map { rule in
            var fields = [#""syscall": \#(jsonString(rule.syscall))"#, #""reason": \#(jsonString(rule.reason))"#]
            if !rule.arguments.isEmpty {
                let args = rule.arguments.map { condition in
                    var parts = [#""index": \#(condition.index)"#, #""op": "\#(condition.op.rawValue)""#,
                                 #""value": "0x\#(String(condition.value, radix: 16))""#]
                    if let mask = condition.mask { parts.append(#""mask": "0x\#(String(mask, radix: 16))""#) }
                    return "{" + parts.joined(separator: ", ") + "}"
                }
                fields.append(#""args": [\#(args.joined(separator: ", "))]"#)
            }
            if case .errno(let code) = rule.action { fields.append(#""errno": \#(code)"#) }
            return "    {" + fields.joined(separator: ", ") + "}"
        }
        return "{\"default_action\": \"\(defaultAction.rawValue)\",\n \"rules\": [\n"
            + ruleLines.joined(separator: ",\n") + "\n]}\n"
    }

    private static func parseRule(_ value: JSONValue, field: String, issues: inout [FieldIssue]) -> SeccompRule? {
        guard let object = value.object(at: field, issues: &issues) else { return nil }
        issues += object.unknownKeys(allowed: ["syscall", "reason", "args", "errno"], at: field)
        let before = issues.count
        let syscall = object["syscall"]?.string(at: "\(field).syscall", issues: &issues)
        if object["syscall"] == nil { issues.append(FieldIssue(field: "\(field).syscall", value: "missing", reason: "is required")) }
        let reason = object["reason"]?.string(at: "\(field).reason", issues: &issues)
        if object["reason"] == nil { issues.append(FieldIssue(field: "\(field).reason", value: "missing", reason: "is required: every rule says why it exists")) }
        var action = SeccompRule.Action.allow
        if let errnoValue = object["errno"] {
            if let code = errnoValue.integer(at: "\(field).errno", issues: &issues) {
                if code >= 1 && code <= 4095 {
                    action = .errno(Int32(code))
                } else {
                    issues.append(FieldIssue(field: "\(field).errno", value: "\(code)", reason: "is not an errno (1…4095)"))
                }
            }
        }
        var conditions: [SeccompArgumentCondition] = []
        if let argValues = object["args"]?.array(at: "\(field).args", issues: &issues) {
            for (j, argValue) in argValues.enumerated() {
                let argField = "\(field).args[\(j)]"
                guard let arg = argValue.object(at: argField, issues: &issues) else { continue }
                issues += arg.unknownKeys(allowed: ["index", "op", "value", "mask"], at: argField)
                let index = arg["index"]?.integer(at: "\(argField).index", issues: &issues)
                if arg["index"] == nil { issues.append(FieldIssue(field: "\(argField).index", value: "missing", reason: "is required (0…5)")) }
                var op: SeccompArgumentCondition.Operator?
                if let opName = arg["op"]?.string(at: "\(argField).op", issues: &issues) {
                    op = SeccompArgumentCondition.Operator(rawValue: opName)
                    if op == nil {
                        let known = SeccompArgumentCondition.Operator.allCases.map(\.rawValue).joined(separator: ", ")
                        issues.append(FieldIssue(field: "\(argField).op", value: "\"\(opName)\"", reason: "is not one of \(known)"))
                    }
                } else if arg["op"] == nil {
                    issues.append(FieldIssue(field: "\(argField).op", value: "missing", reason: "is required"))
                }
                let value = arg["value"]?.integer(at: "\(argField).value", issues: &issues)
                if arg["value"] == nil { issues.append(FieldIssue(field: "\(argField).value", value: "missing", reason: "is required")) }
                let mask = arg["mask"]?.integer(at: "\(argField).mask", issues: &issues)
                if let index, let op, let value {
                    guard index <= UInt64(Int.max) else { continue }
                    conditions.append(SeccompArgumentCondition(index: Int(index), op, value, mask: mask))
                }
            }
        }
        guard issues.count == before, let syscall, let reason else { return nil }
        return SeccompRule(syscall, arguments: conditions, action: action, reason: reason)
    }
}

/// Any JSON value, decoded without losing 64-bit integers, so the policy parser can name every
/// wrong field itself.
private enum JSONValue: Decodable {
    case null
    case bool(Bool)
    case unsigned(UInt64)
    case signed(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(UInt64.self) { self = .unsigned(value) }
        else if let value = try? container.decode(Int64.self) { self = .signed(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    var rendered: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .unsigned(let value): "\(value)"
        case .signed(let value): "\(value)"
        case .double(let value): "\(value)"
        case .string(let value): "\"\(value)\""
        case .array: "an array"
        case .object: "an object"
        }
    }

    func object(at field: String, issues: inout [FieldIssue]) -> [String: JSONValue]? {
        if case .object(let value) = self { return value }
        issues.append(FieldIssue(field: field.isEmpty ? "policy" : field, value: rendered, reason: "is not an object"))
        return nil
    }

    func array(at field: String, issues: inout [FieldIssue]) -> [JSONValue]? {
        if case .array(let value) = self { return value }
        issues.append(FieldIssue(field: field, value: rendered, reason: "is not an array"))
        return nil
    }

    func string(at field: String, issues: inout [FieldIssue]) -> String? {
        if case .string(let value) = self { return value }
        issues.append(FieldIssue(field: field, value: rendered, reason: "is not a string"))
        return nil
    }

    /// A non-negative integer, also accepted as a decimal or `0x` hexadecimal string.
    func integer(at field: String, issues: inout [FieldIssue]) -> UInt64? {
        switch self {
        case .unsigned(let value):
            return value
        case .string(let text):
            let parsed = text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
            if let parsed { return parsed }
        default:
            break
        }
        issues.append(FieldIssue(field: field, value: rendered, reason: "is not a non-negative 64-bit integer"))
        return nil
    }
}

extension Dictionary where Key == String, Value == JSONValue {
    fileprivate func unknownKeys(allowed: Set<String>, at field: String) -> [FieldIssue] {
        keys.filter { !allowed.contains($0) }.sorted().map { key in
            FieldIssue(field: field.isEmpty ? key : "\(field).\(key)", value: "present",
                       reason: "is not a known key (expected one of \(allowed.sorted().joined(separator: ", ")))")
        }
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
private func jsonString(_ text: String) -> String {
    var escaped = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": escaped += "\\\""
        case "\\": escaped += "\\\\"
        case "\n": escaped += "\\n"
        case "\t": escaped += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            escaped += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: escaped.unicodeScalars.append(scalar)
        }
    }
    return escaped + "\""
}
