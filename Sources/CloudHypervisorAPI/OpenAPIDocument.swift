import Foundation
import Yams

/// The component schemas of an OpenAPI 3.0 document, ready for ``OpenAPISchemaValidator``.
public struct OpenAPIDocument: Sendable {
    /// `components.schemas`, by name.
    public let schemas: [String: OpenAPISchema]
    /// `info.version`.
    public let version: String?

    /// Reads an OpenAPI document in YAML (or JSON, which is YAML).
    ///
    /// Plain scalars resolve as in YAML 1.2's core schema (`true`/`false`, integers, floats, `null`,
    /// the rest strings — YAML 1.1's `on`/`off`/`yes`/`no` stay strings); quoted scalars are strings.
    /// A validation keyword this loader does not implement is an error, never silently ignored.
    public init(yaml: String) throws(OpenAPIDocumentError) {
        let root: JSONValue
        do {
            guard let node = try Yams.compose(yaml: yaml, .basic) else {
                throw OpenAPIDocumentError(path: "", reason: "the document is empty")
            }
            root = try Self.json(node, path: "")
        } catch let error as OpenAPIDocumentError {
            throw error
        } catch {
            throw OpenAPIDocumentError(path: "", reason: "not valid YAML: \(error)")
        }
        guard case .object(let schemas)? = root["components"]?["schemas"] else {
            throw OpenAPIDocumentError(path: "components.schemas", reason: "missing")
        }
        var parsed: [String: OpenAPISchema] = [:]
        for (name, value) in schemas {
            parsed[name] = try OpenAPISchema(json: value, path: "components.schemas.\(name)")
        }
        for (name, schema) in parsed {
            for reference in schema.references where parsed[reference] == nil {
                throw OpenAPIDocumentError(path: "components.schemas.\(name)", reason: "$ref to unknown schema \(reference)")
            }
        }
        self.schemas = parsed
        if case .string(let version)? = root["info"]?["version"] { self.version = version } else { self.version = nil }
    }

    /// cloud-hypervisor's own API document (commit ae44c2971, Apache-2.0), bundled with this module.
    public static func cloudHypervisor() throws(OpenAPIDocumentError) -> OpenAPIDocument {
        try bundled.get()
    }

    /// The text of the bundled cloud-hypervisor document.
    public static func cloudHypervisorYAML() throws(OpenAPIDocumentError) -> String {
        guard let url = Bundle.module.url(forResource: "cloud-hypervisor.openapi", withExtension: "yaml",
                                          subdirectory: "Resources") else {
            throw OpenAPIDocumentError(path: "", reason: "cloud-hypervisor.openapi.yaml is missing from the bundle")
        }
        do {
            return try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw OpenAPIDocumentError(path: url.path, reason: "unreadable: \(error)")
        }
    }

    private static let bundled: Result<OpenAPIDocument, OpenAPIDocumentError> = Result {
        () throws(OpenAPIDocumentError) -> OpenAPIDocument in
        try OpenAPIDocument(yaml: cloudHypervisorYAML())
    }

    private static func json(_ node: Node, path: String) throws(OpenAPIDocumentError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            return scalar.style == .plain ? resolvePlain(scalar.string) : .string(scalar.string)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            for (index, item) in sequence.enumerated() { items.append(try json(item, path: "\(path)[\(index)]")) }
            return .array(items)
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw OpenAPIDocumentError(path: path, reason: "a mapping key is not a scalar")
                }
                let childPath = path.isEmpty ? keyScalar.string : "\(path).\(keyScalar.string)"
                guard members[keyScalar.string] == nil else {
                    throw OpenAPIDocumentError(path: childPath, reason: "duplicate key")
                }
                members[keyScalar.string] = try json(value, path: childPath)
            }
            return .object(members)
        case .alias:
            throw OpenAPIDocumentError(path: path, reason: "YAML aliases are not supported")
        }
    }

    private static func resolvePlain(_ text: String) -> JSONValue {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        let body = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        if !body.isEmpty, body.allSatisfy({ $0.isASCII && $0.isNumber }) {
            if let value = Int64(text) { return .integer(value) }
            if let value = UInt64(text) { return .unsignedInteger(value) }
        }
        let numeric = !body.isEmpty && body.allSatisfy { $0.isASCII && ($0.isNumber || ".eE+-".contains($0)) }
            && body.first?.isNumber == true
        if numeric, let value = Double(text) { return .double(value) }
        return .string(text)
    }
}

/// Why an OpenAPI document could not be loaded: where in it, and what.
public struct OpenAPIDocumentError: Error, Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}
