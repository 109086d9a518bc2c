import CloudHypervisorAPI
import Foundation

/// Validates request bodies against cloud-hypervisor's OpenAPI document (bundled with
/// `CloudHypervisorAPI`) the way the real VMM's deserializer treats them: unknown properties are
/// ignored (serde's default), a `vm.create` body without `payload` is accepted (the VMM is lenient
/// there although the document marks it required), and the simulator's own serde-level checks
/// (`DefaultBodyValidator`, e.g. `vm.remove-device` needs `id`) apply on top.
public enum OpenAPIBodyValidator {
    /// The component schema of each body the simulator reads, by document path.
    public static let schemas: [String: String] = [
        "/vm.create": "VmConfig",
        "/vm.add-net": "NetConfig",
        "/vm.add-disk": "DiskConfig",
        "/vm.resize": "VmResize",
        "/vm.remove-device": "VmRemoveDevice",
    ]

    /// The combined validator; throws when the bundled document cannot be loaded.
    public static func make() throws -> BodyValidator {
        let validator = try OpenAPISchemaValidator.cloudHypervisor(options: .cloudHypervisor)
        return { path, body in
            var problems: [String] = []
            if let schema = schemas[path] {
                for violation in validator.validate(Data(body), against: schema) {
                    if schema == "VmConfig", violation.kind == .missingProperty, violation.path == "$.payload" { continue }
                    problems.append(violation.description)
                }
            }
            // The serde-level checks catch what the document does not require.
            return problems.isEmpty ? DefaultBodyValidator.validate(path: path, body: body) : problems
        }
    }
}
