/// One schema object of an OpenAPI 3.0 document (the subset used for request and response bodies).
public final class OpenAPISchema: Sendable {
    /// `additionalProperties`: a boolean or a schema.
    public enum AdditionalProperties: Sendable {
        case allowed(Bool)
        case schema(OpenAPISchema)
    }

    /// The name from `$ref: "#/components/schemas/NAME"`.
    public let ref: String?
    public let type: String?
    public let format: String?
    public let properties: [String: OpenAPISchema]
    public let required: [String]
    public let additionalProperties: AdditionalProperties?
    public let items: OpenAPISchema?
    public let enumValues: [JSONValue]?
    public let minimum: JSONValue?
    public let maximum: JSONValue?
    public let exclusiveMinimum: Bool
    public let exclusiveMaximum: Bool
    public let minLength: Int?
    public let maxLength: Int?
    public let minItems: Int?
    public let maxItems: Int?
    public let nullable: Bool
    public let allOf: [OpenAPISchema]
    public let anyOf: [OpenAPISchema]
    public let oneOf: [OpenAPISchema]

    /// Keywords that only annotate and never constrain a value.
    static let annotations: Set<String> = ["description", "default", "deprecated", "example", "title",
                                           "readOnly", "writeOnly", "externalDocs", "xml"]
    static let types: Set<String> = ["object", "array", "string", "integer", "number", "boolean"]

    init(json: JSONValue, path: String) throws(OpenAPIDocumentError) {
        guard case .object(let members) = json else {
            throw OpenAPIDocumentError(path: path, reason: "a schema must be an object")
        }
        func fail(_ key: String, _ reason: String) -> OpenAPIDocumentError {
            OpenAPIDocumentError(path: "\(path).\(key)", reason: reason)
        }
        func string(_ key: String) throws(OpenAPIDocumentError) -> String? {
            guard let value = members[key] else { return nil }
            guard case .string(let text) = value else { throw fail(key, "must be a string") }
            return text
        }
        func integer(_ key: String) throws(OpenAPIDocumentError) -> Int? {
            guard let value = members[key] else { return nil }
            guard case .integer(let number) = value, number >= 0 else { throw fail(key, "must be a non-negative integer") }
            return Int(number)
        }
        func bool(_ key: String) throws(OpenAPIDocumentError) -> Bool {
            guard let value = members[key] else { return false }
            guard case .bool(let flag) = value else { throw fail(key, "must be a boolean") }
            return flag
        }
        func number(_ key: String) throws(OpenAPIDocumentError) -> JSONValue? {
            guard let value = members[key] else { return nil }
            switch value {
            case .integer, .unsignedInteger, .double: return value
            default: throw fail(key, "must be a number")
            }
        }
        func list(_ key: String) throws(OpenAPIDocumentError) -> [OpenAPISchema] {
            guard let value = members[key] else { return [] }
            guard case .array(let entries) = value, !entries.isEmpty else { throw fail(key, "must be a non-empty array") }
            var schemas: [OpenAPISchema] = []
            for (index, entry) in entries.enumerated() {
                schemas.append(try OpenAPISchema(json: entry, path: "\(path).\(key)[\(index)]"))
            }
            return schemas
        }

        let known: Set<String> = ["$ref", "type", "format", "properties", "required", "additionalProperties", "items",
                                  "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
                                  "maxLength", "minItems", "maxItems", "nullable", "allOf", "anyOf", "oneOf"]
        for key in members.keys where !known.contains(key) && !Self.annotations.contains(key) {
            throw fail(key, "keyword not supported by this validator")
        }

        if let reference = try string("$ref") {
            let prefix = "#/components/schemas/"
            guard reference.hasPrefix(prefix) else { throw fail("$ref", "only \(prefix)NAME references are supported") }
            ref = String(reference.dropFirst(prefix.count))
        } else {
            ref = nil
        }
        type = try string("type")
        if let type, !Self.types.contains(type) { throw fail("type", "unknown type \(type)") }
        format = try string("format")

        var properties: [String: OpenAPISchema] = [:]
        if let value = members["properties"] {
            guard case .object(let entries) = value else { throw fail("properties", "must be an object") }
            for (name, entry) in entries {
                properties[name] = try OpenAPISchema(json: entry, path: "\(path).properties.\(name)")
            }
        }
        self.properties = properties

        if let value = members["required"] {
            guard case .array(let names) = value else { throw fail("required", "must be an array of strings") }
            var required: [String] = []
            for name in names {
                guard case .string(let text) = name else { throw fail("required", "must be an array of strings") }
                required.append(text)
            }
            self.required = required
        } else {
            self.required = []
        }

        switch members["additionalProperties"] {
        case nil: additionalProperties = nil
        case .bool(let flag)?: additionalProperties = .allowed(flag)
        case let value?: additionalProperties = .schema(try OpenAPISchema(json: value, path: "\(path).additionalProperties"))
        }
        items = try members["items"].map { value throws(OpenAPIDocumentError) in
            try OpenAPISchema(json: value, path: "\(path).items")
        }
        if let value = members["enum"] {
            guard case .array(let values) = value, !values.isEmpty else { throw fail("enum", "must be a non-empty array") }
            enumValues = values
        } else {
            enumValues = nil
        }
        minimum = try number("minimum")
        maximum = try number("maximum")
        exclusiveMinimum = try bool("exclusiveMinimum")
        exclusiveMaximum = try bool("exclusiveMaximum")
        minLength = try integer("minLength")
        maxLength = try integer("maxLength")
        minItems = try integer("minItems")
        maxItems = try integer("maxItems")
        nullable = try bool("nullable")
        allOf = try list("allOf")
        anyOf = try list("anyOf")
        oneOf = try list("oneOf")
    }

    /// Every schema name this schema refers to, directly or through nested schemas.
    var references: [String] {
        var names: [String] = ref.map { [$0] } ?? []
        for child in properties.values { names += child.references }
        if case .schema(let child)? = additionalProperties { names += child.references }
        if let items { names += items.references }
        for child in allOf + anyOf + oneOf { names += child.references }
        return names
    }
}
