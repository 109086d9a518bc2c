import Foundation
import Testing
import CloudHypervisorAPI

@Suite struct OpenAPIDocumentTests {
    @Test func bundledDocumentLoadsWithEverySchemaTheNodeUses() throws {
        let document = try OpenAPIDocument.cloudHypervisor()
        for name in ["VmConfig", "CpusConfig", "MemoryConfig", "PayloadConfig", "DiskConfig", "NetConfig", "RngConfig",
                     "SerialConfig", "ConsoleConfig", "VsockConfig", "RateLimiterConfig", "TokenBucket",
                     "RateLimitGroupConfig", "VmResize", "VmRemoveDevice", "DeviceConfig", "VmInfo", "VmmPingResponse",
                     "PciDeviceInfo", "VmCounters", "PlatformConfig"] {
            #expect(document.schemas[name] != nil, "\(name) missing")
        }
        #expect(document.schemas["ConsoleMode"]?.enumValues == ["Off", "Pty", "Tty", "File", "Socket", "Null"].map(JSONValue.string))
        #expect(document.schemas["CpusConfig"]?.required == ["boot_vcpus", "max_vcpus"])
        #expect(document.schemas["VsockConfig"]?.properties["cid"]?.minimum == .integer(3))
        #expect(document.version == "0.3.0")
    }

    @Test func plainScalarsResolveLikeYAML12() throws {
        let document = try OpenAPIDocument(yaml: """
            components:
              schemas:
                S:
                  type: string
                  enum: [off, On, yes, "true", true, 12, 1.5, ~, 0x10]
            """)
        #expect(document.schemas["S"]?.enumValues == [.string("off"), .string("On"), .string("yes"), .string("true"),
                                                      .bool(true), .integer(12), .double(1.5), .null, .string("0x10")])
    }

    @Test(arguments: [
        ("components:\n  schemas:\n    S:\n      type: string\n      pattern: \"^a$\"\n", "components.schemas.S.pattern: keyword not supported by this validator"),
        ("components:\n  schemas:\n    S:\n      $ref: \"#/components/schemas/T\"\n", "components.schemas.S: $ref to unknown schema T"),
        ("components:\n  schemas:\n    S:\n      type: thing\n", "components.schemas.S.type: unknown type thing"),
        ("components:\n  schemas:\n    S:\n      $ref: \"other.yaml#/S\"\n", "components.schemas.S.$ref: only #/components/schemas/NAME references are supported"),
        ("openapi: 3.0.1\n", "components.schemas: missing"),
        ("a: [\n", nil),
    ] as [(String, String?)])
    func rejectsDocumentsItCannotHonour(yaml: String, message: String?) throws {
        let error = try #require(throws: OpenAPIDocumentError.self) { try OpenAPIDocument(yaml: yaml) }
        if let message { #expect(error.description == message) } else { #expect(error.reason.hasPrefix("not valid YAML")) }
    }
}
