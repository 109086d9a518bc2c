import Foundation
import Testing
import CloudHypervisorAPI

@Suite struct OpenAPISchemaValidatorTests {
    static let validVmConfig = #"""
    {"cpus": {"boot_vcpus": 2, "max_vcpus": 4, "topology": {"threads_per_core": 1, "cores_per_die": 2, "dies_per_package": 1, "packages": 2}},
     "memory": {"size": 1073741824, "shared": true},
     "payload": {"kernel": "/k", "cmdline": "console=ttyS0"},
     "disks": [{"id": "root", "path": "/d", "num_queues": 1, "queue_size": 128, "pci_segment": 0,
                "rate_limiter_config": {"ops": {"size": 100, "refill_time": 1000}}}],
     "net": [{"id": "net0", "vhost_user": true, "vhost_socket": "/s", "vhost_mode": "Server", "num_queues": 2}],
     "rng": {"src": "/dev/urandom"}, "serial": {"mode": "Socket", "socket": "/serial"}, "console": {"mode": "Off"},
     "vsock": {"cid": 3, "socket": "/v"},
     "rate_limit_groups": [{"id": "g", "rate_limiter_config": {"bandwidth": {"size": 1, "refill_time": 1, "one_time_burst": 0}}}]}
    """#

    let strict: OpenAPISchemaValidator
    let lenient: OpenAPISchemaValidator

    init() throws {
        strict = try OpenAPISchemaValidator.cloudHypervisor()
        lenient = try OpenAPISchemaValidator.cloudHypervisor(options: .cloudHypervisor)
    }

    @Test func validBodyPasses() {
        #expect(strict.validate(Data(Self.validVmConfig.utf8), against: "VmConfig") == [])
        #expect(lenient.validate(Data(Self.validVmConfig.utf8), against: "VmConfig") == [])
    }

    /// Each case replaces one fragment of the valid body and expects exactly these (path, kind) pairs.
    @Test(arguments: [
        (#""boot_vcpus": 2, "max_vcpus": 4"#, #""boot_vcpus": 2"#, [("$.cpus.max_vcpus", SchemaViolation.Kind.missingProperty)]),
        (#""boot_vcpus": 2"#, #""boot_vcpus": "2""#, [("$.cpus.boot_vcpus", .typeMismatch)]),
        (#""boot_vcpus": 2"#, #""boot_vcpus": 2.5"#, [("$.cpus.boot_vcpus", .typeMismatch)]),
        (#""boot_vcpus": 2"#, #""boot_vcpus": 2.0"#, [("$.cpus.boot_vcpus", .typeMismatch)]),
        (#""boot_vcpus": 2"#, #""boot_vcpus": 0"#, [("$.cpus.boot_vcpus", .outOfRange)]),
        (#""shared": true"#, #""shared": "yes""#, [("$.memory.shared", .typeMismatch)]),
        (#""shared": true"#, #""shared": null"#, [("$.memory.shared", .typeMismatch)]),
        (#""mode": "Socket""#, #""mode": "Sock""#, [("$.serial.mode", .notInEnum)]),
        (#""mode": "Off""#, #""mode": "off""#, [("$.console.mode", .notInEnum)]),
        (#""pci_segment": 0"#, #""pci_segment": 40000"#, [("$.disks[0].pci_segment", .outOfRange)]),
        (#""pci_segment": 0"#, #""pci_segment": 0, "pci_device_id": 256"#, [("$.disks[0].pci_device_id", .outOfRange)]),
        (#""pci_segment": 0"#, #""pci_segment": 0, "pci_device_id": -1"#, [("$.disks[0].pci_device_id", .outOfRange)]),
        (#""cid": 3"#, #""cid": 2"#, [("$.vsock.cid", .outOfRange)]),
        (#""size": 1073741824"#, #""size": 9223372036854775808"#, [("$.memory.size", .outOfRange)]),
        (#""cid": 3, "socket": "/v""#, #""cid": 3"#, [("$.vsock.socket", .missingProperty)]),
        (#""src": "/dev/urandom""#, #""source": "/dev/urandom""#, [("$.rng.src", .missingProperty), ("$.rng.source", .unknownProperty)]),
        (#""payload": {"kernel": "/k", "cmdline": "console=ttyS0"},"#, "", [("$.payload", .missingProperty)]),
        (#""rng": {"src": "/dev/urandom"}"#, #""rng": ["/dev/urandom"]"#, [("$.rng", .typeMismatch)]),
        (#""size": 100, "refill_time": 1000"#, #""size": 100"#, [("$.disks[0].rate_limiter_config.ops.refill_time", .missingProperty)]),
        (#""size": 100, "refill_time": 1000"#, #""size": -1, "refill_time": 1000"#, [("$.disks[0].rate_limiter_config.ops.size", .outOfRange)]),
        (#""threads_per_core": 1"#, #""threads_per_core": true"#, [("$.cpus.topology.threads_per_core", .typeMismatch)]),
        (#""boot_vcpus": 2, "max_vcpus": 4"#, #""boot_vcpus": "x", "max_vcpus": [], "max_vcpu": 1"#,
         [("$.cpus.boot_vcpus", .typeMismatch), ("$.cpus.max_vcpu", .unknownProperty), ("$.cpus.max_vcpus", .typeMismatch)]),
    ])
    func brokenBodiesAreRejectedWithThePath(original: String, replacement: String, expected: [(String, SchemaViolation.Kind)]) {
        let body = Self.validVmConfig.replacingOccurrences(of: original, with: replacement)
        #expect(body != Self.validVmConfig)
        let violations = strict.validate(Data(body.utf8), against: "VmConfig")
        #expect(violations.map(\.path) == expected.map(\.0), "\(violations)")
        #expect(violations.map(\.kind) == expected.map(\.1))
    }

    @Test func messagesNameTheProblem() {
        let body = Self.validVmConfig.replacingOccurrences(of: #""boot_vcpus": 2, "max_vcpus": 4"#, with: #""boot_vcpus": 2"#)
            .replacingOccurrences(of: #""mode": "Socket""#, with: #""mode": "Sock""#)
            .replacingOccurrences(of: #""pci_segment": 0"#, with: #""pci_segment": 40000"#)
        #expect(strict.validate(Data(body.utf8), against: "VmConfig").map(\.description) == [
            "$.cpus.max_vcpus: required property is missing",
            #"$.disks[0].pci_segment: 40000 is outside the int16 range -32768...32767"#,
            #"$.serial.mode: "Sock" is not one of "Off", "Pty", "Tty", "File", "Socket", "Null""#,
        ])
    }

    @Test func unknownPropertiesFollowTheOptions() {
        let body = Data(#"{"payload": {"kernel": "/k", "kernal": "/x"}, "cpus": {"boot_vcpus": 1, "max_vcpus": 1, "max_vcpu": 1}}"#.utf8)
        #expect(strict.validate(body, against: "VmConfig").map(\.path) == ["$.cpus.max_vcpu", "$.payload.kernal"])
        #expect(lenient.validate(body, against: "VmConfig") == [])
        let limiter = Data(#"{"path": "/d", "rate_limiter_config": {"bandwidht": {"size": 1, "refill_time": 1}}}"#.utf8)
        #expect(lenient.validate(limiter, against: "DiskConfig").map(\.description)
                == ["$.rate_limiter_config.bandwidht: property not in the schema"])
    }

    @Test func additionalPropertiesSchemasAreApplied() {
        #expect(strict.validate(Data(#"{"net0": {"rx_bytes": 10, "tx_bytes": 18446744073709551615}}"#.utf8), against: "VmCounters")
                    .map(\.description) == ["$.net0.tx_bytes: 18446744073709551615 is outside the int64 range -9223372036854775808...9223372036854775807"])
        #expect(strict.validate(Data(#"{"net0": {"rx_bytes": "10"}, "disk0": 3}"#.utf8), against: "VmCounters").map(\.path)
                == ["$.disk0", "$.net0.rx_bytes"])
    }

    @Test func responsesValidate() {
        #expect(strict.validate(Data(#"{"id":"net0","bdf":"0000:00:03.0"}"#.utf8), against: "PciDeviceInfo") == [])
        #expect(strict.validate(Data(#"{"version":"v52.0","pid":42,"features":["kvm"]}"#.utf8), against: "VmmPingResponse") == [])
        #expect(strict.validate(Data(#"{"config":{"payload":{}},"state":"Running"}"#.utf8), against: "VmInfo") == [])
        #expect(strict.validate(Data(#"{"config":{"payload":{}},"state":"running"}"#.utf8), against: "VmInfo").map(\.path) == ["$.state"])
    }

    @Test func inputProblemsAreViolationsToo() {
        #expect(strict.validate(Data("{".utf8), against: "VmConfig").map(\.kind) == [.invalidJSON])
        #expect(strict.validate(Data("{}".utf8), against: "NoSuchSchema").map(\.kind) == [.unknownSchema])
        #expect(strict.validate(Data("[]".utf8), against: "VmConfig").map(\.description) == ["$: expected an object, found array"])
    }

    /// Keywords the cloud-hypervisor document does not use (yet), checked on a small document.
    @Test func combinatorsNullableAndBounds() throws {
        let document = try OpenAPIDocument(yaml: """
            components:
              schemas:
                Base:
                  type: object
                  required: [id]
                  properties:
                    id: {type: string, minLength: 1, maxLength: 3}
                Thing:
                  allOf:
                    - $ref: "#/components/schemas/Base"
                    - type: object
                      properties:
                        count: {type: integer, minimum: 0, maximum: 10, exclusiveMaximum: true}
                        ratio: {type: number, minimum: 0.5}
                        note: {type: string, nullable: true}
                        tags: {type: array, minItems: 1, maxItems: 2, items: {type: string}}
                        either: {oneOf: [{type: integer}, {type: number}]}
                        any: {anyOf: [{type: integer}, {type: boolean}]}
                        closed: {type: object, additionalProperties: false, properties: {a: {type: integer}}}
            """)
        let validator = OpenAPISchemaValidator(document: document, options: .init(unknownProperties: .allow))
        #expect(validator.validate(Data(#"{"id": "ab", "count": 9, "ratio": 0.5, "note": null, "tags": ["x"], "either": 1.5, "any": true, "closed": {"a": 1}}"#.utf8),
                                   against: "Thing") == [])
        let bad = Data(#"{"id": "", "count": 10, "ratio": 0.25, "tags": [], "either": 1, "any": "s", "closed": {"b": 1}}"#.utf8)
        #expect(validator.validate(bad, against: "Thing").map(\.description) == [
            "$.id: length 0 is below 1",
            "$.any: matches none of the 2 alternatives",
            "$.closed.b: property not allowed here",
            "$.count: 10 is above the maximum 10",
            "$.either: matches 2 alternatives of oneOf, not exactly one",
            "$.ratio: 0.25 is below the minimum 0.5",
            "$.tags: 0 items, fewer than 1",
        ])
        #expect(validator.validate(Data(#"{"note": null}"#.utf8), against: "Thing").map(\.description) == ["$.id: required property is missing"])
    }
}
