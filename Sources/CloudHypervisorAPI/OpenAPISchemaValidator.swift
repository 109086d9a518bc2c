public import Foundation

/// One way a JSON value fails a schema, at a JSON path such as `$.disks[1].queue_size`.
public struct SchemaViolation: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// A property the schema requires is absent; the path names the missing property.
        case missingProperty
        case typeMismatch
        case notInEnum
        /// Outside `format`'s integer range, `minimum` or `maximum`.
        case outOfRange
        /// A property the schema doesn't list, where unknown properties are rejected.
        case unknownProperty
        /// `minLength`/`maxLength`/`minItems`/`maxItems`.
        case badLength
        /// No (or, for `oneOf`, more than one) alternative matched.
        case noAlternative
        /// The input is not JSON.
        case invalidJSON
        /// The schema name is not in the document.
        case unknownSchema
    }

    public let path: String
    public let kind: Kind
    public let message: String

    public init(path: String, kind: Kind, message: String) {
        self.path = path
        self.kind = kind
        self.message = message
    }

    /// `$.cpus.max_vcpus: required property is missing`
    public var description: String { "\(path): \(message)" }
}

/// Validates JSON bodies against the component schemas of an OpenAPI document and reports every
/// violation with its path. Used by the node on what it sends and by the cloud-hypervisor simulator
/// on what it receives.
public struct OpenAPISchemaValidator: Sendable {
    /// What to do with object properties a schema doesn't list (when it says nothing itself).
    public enum UnknownProperties: Sendable, Hashable {
        case allow, reject
    }

    public struct Options: Sendable, Hashable {
        public var unknownProperties: UnknownProperties
        /// Schemas whose objects reject unknown properties whatever `unknownProperties` says.
        public var closedSchemas: Set<String>

        public init(unknownProperties: UnknownProperties, closedSchemas: Set<String> = []) {
            self.unknownProperties = unknownProperties
            self.closedSchemas = closedSchemas
        }

        /// For bodies the node builds: any property the document doesn't list is a mistake.
        public static let strict = Options(unknownProperties: .reject)

        /// What the real cloud-hypervisor accepts: serde ignores unknown fields, except in
        /// `RateLimiterConfig`, which is `deny_unknown_fields`.
        public static let cloudHypervisor = Options(unknownProperties: .allow, closedSchemas: ["RateLimiterConfig"])
    }

    public let document: OpenAPIDocument
    public let options: Options

    public init(document: OpenAPIDocument, options: Options = .strict) {
        self.document = document
        self.options = options
    }

    /// A validator for cloud-hypervisor's bundled API document.
    public static func cloudHypervisor(options: Options = .strict) throws(OpenAPIDocumentError) -> OpenAPISchemaValidator {
        OpenAPISchemaValidator(document: try .cloudHypervisor(), options: options)
    }

    /// Validates JSON text against the component schema `schema` (e.g. `"VmConfig"`).
    public func validate(_ json: Data, against schema: String) -> [SchemaViolation] {
        let value: JSONValue
        do {
            value = try JSONValue(json: json)
        } catch {
            return [SchemaViolation(path: "$", kind: .invalidJSON, message: "not valid JSON: \(error)")]
        }
        return validate(value, against: schema)
    }

    /// Validates a JSON value against the component schema `schema`.
    public func validate(_ value: JSONValue, against schema: String) -> [SchemaViolation] {
        var run = Run(document: document, options: options)
        run.check(value, .named(schema), path: "$")
        return run.violations
    }

    /// Validates what `value` encodes to (e.g. a ``VmConfig``) against `schema`.
    public func validate(encoding value: some Encodable, against schema: String) -> [SchemaViolation] {
        do {
            return validate(try JSONValue(encoding: value), against: schema)
        } catch {
            return [SchemaViolation(path: "$", kind: .invalidJSON, message: "could not encode: \(error)")]
        }
    }
}

/// One validation pass: walks the value and the schema together, collecting violations.
private struct Run {
    enum SchemaRef {
        case named(String)
        case inline(OpenAPISchema)
    }

    let document: OpenAPIDocument
    let options: OpenAPISchemaValidator.Options
    var violations: [SchemaViolation] = []

    init(document: OpenAPIDocument, options: OpenAPISchemaValidator.Options) {
        self.document = document
        self.options = options
    }

    mutating func add(_ path: String, _ kind: SchemaViolation.Kind, _ message: String) {
        violations.append(SchemaViolation(path: path, kind: kind, message: message))
    }

    mutating func check(_ value: JSONValue, _ reference: SchemaRef, path: String, closed: Bool = false) {
        switch reference {
        case .named(let name):
            guard let schema = document.schemas[name] else {
                add(path, .unknownSchema, "no schema named \(name) in the document")
                return
            }
            check(value, schema, path: path, closed: options.closedSchemas.contains(name))
        case .inline(let schema):
            check(value, schema, path: path, closed: closed)
        }
    }

    mutating func check(_ value: JSONValue, _ schema: OpenAPISchema, path: String, closed: Bool) {
        if let name = schema.ref {
            check(value, .named(name), path: path)
            return
        }
        if value == .null && schema.nullable { return }
        for part in schema.allOf { check(value, .inline(part), path: path) }
        if !schema.anyOf.isEmpty { alternatives(value, schema.anyOf, path: path, exactlyOne: false) }
        if !schema.oneOf.isEmpty { alternatives(value, schema.oneOf, path: path, exactlyOne: true) }
        if let type = schema.type, !Self.matches(value, type: type) {
            add(path, .typeMismatch, "expected \(type == "boolean" ? "a boolean" : "\(Self.article(type)) \(type)"), found \(value.typeName)")
            return
        }
        if let allowed = schema.enumValues, !allowed.contains(value) {
            add(path, .notInEnum, "\(value) is not one of \(allowed.map(\.description).joined(separator: ", "))")
        }
        switch value {
        case .integer, .unsignedInteger, .double:
            number(value, schema, path: path)
        case .string(let text):
            let length = text.unicodeScalars.count
            if let minimum = schema.minLength, length < minimum {
                add(path, .badLength, "length \(length) is below \(minimum)")
            }
            if let maximum = schema.maxLength, length > maximum {
                add(path, .badLength, "length \(length) is above \(maximum)")
            }
        case .array(let items):
            if let minimum = schema.minItems, items.count < minimum {
                add(path, .badLength, "\(items.count) items, fewer than \(minimum)")
            }
            if let maximum = schema.maxItems, items.count > maximum {
                add(path, .badLength, "\(items.count) items, more than \(maximum)")
            }
            if let itemSchema = schema.items {
                for (index, item) in items.enumerated() { check(item, .inline(itemSchema), path: "\(path)[\(index)]") }
            }
        case .object(let members):
            object(members, schema, path: path, closed: closed)
        case .null, .bool:
            break
        }
    }

    private mutating func object(_ members: [String: JSONValue], _ schema: OpenAPISchema, path: String, closed: Bool) {
        for name in schema.required where members[name] == nil {
            add("\(path).\(name)", .missingProperty, "required property is missing")
        }
        for name in members.keys.sorted() {
            guard let member = members[name] else { continue }
            let memberPath = "\(path).\(name)"
            if let propertySchema = schema.properties[name] {
                check(member, .inline(propertySchema), path: memberPath)
                continue
            }
            switch schema.additionalProperties {
            case .schema(let extra)?:
                check(member, .inline(extra), path: memberPath)
            case .allowed(false)?:
                add(memberPath, .unknownProperty, "property not allowed here")
            case .allowed(true)?:
                break
            case nil:
                if closed || (options.unknownProperties == .reject && (!schema.properties.isEmpty || schema.type == "object")) {
                    add(memberPath, .unknownProperty, "property not in the schema")
                }
            }
        }
    }

    private mutating func alternatives(_ value: JSONValue, _ choices: [OpenAPISchema], path: String, exactlyOne: Bool) {
        var matching = 0
        for choice in choices {
            var trial = Run(document: document, options: options)
            trial.check(value, .inline(choice), path: path)
            if trial.violations.isEmpty { matching += 1 }
        }
        if matching == 0 {
            add(path, .noAlternative, "matches none of the \(choices.count) alternatives")
        } else if exactlyOne && matching > 1 {
            add(path, .noAlternative, "matches \(matching) alternatives of oneOf, not exactly one")
        }
    }

    private mutating func number(_ value: JSONValue, _ schema: OpenAPISchema, path: String) {
        if let format = schema.format, let range = Self.integerFormats[format] {
            if Self.compare(value, .integer(range.lowerBound)) == .orderedAscending
                || Self.compare(value, range.upper) == .orderedDescending {
                add(path, .outOfRange, "\(value) is outside the \(format) range \(range.lowerBound)...\(range.upper)")
            }
        }
        if let minimum = schema.minimum {
            let order = Self.compare(value, minimum)
            if order == .orderedAscending || (schema.exclusiveMinimum && order == .orderedSame) {
                add(path, .outOfRange, "\(value) is below the minimum \(minimum)")
            }
        }
        if let maximum = schema.maximum {
            let order = Self.compare(value, maximum)
            if order == .orderedDescending || (schema.exclusiveMaximum && order == .orderedSame) {
                add(path, .outOfRange, "\(value) is above the maximum \(maximum)")
            }
        }
    }

    static let integerFormats: [String: (lowerBound: Int64, upper: JSONValue)] = [
        "int8": (Int64(Int8.min), .integer(Int64(Int8.max))),
        "int16": (Int64(Int16.min), .integer(Int64(Int16.max))),
        "int32": (Int64(Int32.min), .integer(Int64(Int32.max))),
        "int64": (Int64.min, .integer(Int64.max)),
        "uint8": (0, .integer(Int64(UInt8.max))),
        "uint16": (0, .integer(Int64(UInt16.max))),
        "uint32": (0, .integer(Int64(UInt32.max))),
        "uint64": (0, .unsignedInteger(UInt64.max)),
    ]

    static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool): true
        case ("integer", .integer), ("integer", .unsignedInteger): true
        case ("number", .integer), ("number", .unsignedInteger), ("number", .double): true
        default: false
        }
    }

    static func article(_ type: String) -> String {
        type.first.map { "aeiou".contains($0) } == true ? "an" : "a"
    }

    /// Orders two numbers exactly when both are integers, through `Double` otherwise.
    static func compare(_ lhs: JSONValue, _ rhs: JSONValue) -> ComparisonResult {
        switch (lhs, rhs) {
        case (.integer(let a), .integer(let b)): return a < b ? .orderedAscending : a > b ? .orderedDescending : .orderedSame
        case (.unsignedInteger(let a), .unsignedInteger(let b)):
            return a < b ? .orderedAscending : a > b ? .orderedDescending : .orderedSame
        case (.integer, .unsignedInteger): return .orderedAscending
        case (.unsignedInteger, .integer): return .orderedDescending
        default:
            let a = double(lhs), b = double(rhs)
            return a < b ? .orderedAscending : a > b ? .orderedDescending : .orderedSame
        }
    }

    static func double(_ value: JSONValue) -> Double {
        switch value {
        case .integer(let number): Double(number)
        case .unsignedInteger(let number): Double(number)
        case .double(let number): number
        default: .nan
        }
    }
}
