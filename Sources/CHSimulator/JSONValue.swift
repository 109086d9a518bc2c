import Foundation

/// A JSON document as the simulator stores and echoes it (object key order is not kept).
public enum SimJSON: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([SimJSON])
    case object([String: SimJSON])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([SimJSON].self) { self = .array(a) }
        else { self = .object(try c.decode([String: SimJSON].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Parses `bytes` as strict JSON (RFC 8259, like serde_json); the error text says why it failed.
    public static func parse(_ bytes: [UInt8]) -> Result<SimJSON, ParseError> {
        if let offset = trailingCommaOffset(bytes) {
            return .failure(ParseError(message: "trailing comma at byte \(offset)"))
        }
        do {
            return .success(try JSONDecoder().decode(SimJSON.self, from: Data(bytes)))
        } catch let DecodingError.dataCorrupted(context) {
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return .failure(ParseError(message: underlying ?? context.debugDescription))
        } catch {
            return .failure(ParseError(message: "\(error)"))
        }
    }

    /// Foundation's decoder accepts `[1,]` and `{"a":1,}`; serde_json does not.
    static func trailingCommaOffset(_ bytes: [UInt8]) -> Int? {
        var inString = false
        var escaped = false
        var lastComma: Int?
        for (i, byte) in bytes.enumerated() {
            if inString {
                if escaped { escaped = false }
                else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): continue
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if let lastComma { return lastComma }
            case UInt8(ascii: ","):
                lastComma = i
                continue
            case UInt8(ascii: "\""): inString = true
            default: break
            }
            lastComma = nil
        }
        return nil
    }

    public struct ParseError: Error, Sendable {
        public var message: String
    }

    /// Compact JSON text (keys sorted, so output is stable).
    public func encoded(pretty: Bool = false) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(encoder.encode(self))) ?? Array("null".utf8)
    }

    public subscript(key: String) -> SimJSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var objectValue: [String: SimJSON]? { if case .object(let o) = self { o } else { nil } }
    public var arrayValue: [SimJSON]? { if case .array(let a) = self { a } else { nil } }
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var intValue: Int64? { if case .int(let i) = self { i } else { nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }

    /// The JSON type's name as serde would say it in an error.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .double: "number"
        case .string: "string"
        case .array: "sequence"
        case .object: "map"
        }
    }
}
