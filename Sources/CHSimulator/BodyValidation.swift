/// Checks a request body the way the real VMM's deserializer would and returns every problem
/// found (empty: the body is acceptable). A non-empty answer makes the simulator reply 400
/// `["Failed to deserialize JSON", <problems>]`.
///
/// `path` is the API document's path key, e.g. `/vm.create`; `body` the raw bytes. The default
/// is `DefaultBodyValidator.validate`; a validator built from the OpenAPI document can be plugged
/// in instead (it must still accept a `vm.create` body without `payload`, as the real VMM does).
public typealias BodyValidator = @Sendable (_ path: String, _ body: [UInt8]) -> [String]

/// JSON parsing plus the required fields and types of the bodies the simulator consumes.
public enum DefaultBodyValidator {
    public static func validate(path: String, body: [UInt8]) -> [String] {
        let json: SimJSON
        switch SimJSON.parse(body) {
        case .success(let value): json = value
        case .failure(let error): return [error.message]
        }
        var v = Checker()
        switch path {
        case "/vm.create": v.vmConfig(json, at: "")
        case "/vm.add-net": v.object(json, at: "", NetFields.self)
        case "/vm.add-disk": v.object(json, at: "", DiskFields.self)
        case "/vm.resize":
            v.object(json, at: "", [
                "desired_vcpus": .u8(min: 1), "desired_ram": .u64, "desired_balloon": .u64,
            ])
        case "/vm.remove-device": v.object(json, at: "", ["id": .string], required: ["id"])
        default: break
        }
        return v.problems
    }

    indirect enum Kind: Sendable {
        case string, bool, u64, int
        case u8(min: Int64)
        case u16
        case oneOf([String])
        case object([String: Kind], required: [String])
        case array(Kind)
        case intArray
    }

    static let tokenBucket: Kind = .object(["size": .u64, "one_time_burst": .u64, "refill_time": .u64],
                                           required: ["size", "refill_time"])
    static let rateLimiter: Kind = .object(["bandwidth": tokenBucket, "ops": tokenBucket], required: [])
    static let consoleModes = ["Off", "Pty", "Tty", "File", "Socket", "Null"]

    static let NetFields: [String: Kind] = [
        "tap": .string, "ip": .string, "mask": .string, "mac": .string, "host_mac": .string,
        "mtu": .u16, "iommu": .bool, "num_queues": .u64, "queue_size": .u16, "vhost_user": .bool,
        "vhost_socket": .string, "vhost_mode": .oneOf(["Client", "Server"]), "id": .string,
        "pci_segment": .u16, "rate_limiter_config": rateLimiter, "offload_tso": .bool,
        "offload_ufo": .bool, "offload_csum": .bool, "fds": .intArray,
    ]
    static let DiskFields: [String: Kind] = [
        "path": .string, "readonly": .bool, "direct": .bool, "iommu": .bool, "num_queues": .u64,
        "queue_size": .u16, "vhost_user": .bool, "vhost_socket": .string, "rate_limiter_config": rateLimiter,
        "pci_segment": .u16, "id": .string, "serial": .string, "rate_limit_group": .string,
    ]

    struct Checker {
        var problems: [String] = []

        mutating func vmConfig(_ json: SimJSON, at path: String) {
            let topology: Kind = .object(["threads_per_core": .u8(min: 0), "cores_per_die": .u8(min: 0),
                                          "dies_per_package": .u8(min: 0), "packages": .u8(min: 0)], required: [])
            let affinity: Kind = .array(.object(["vcpu": .u8(min: 0), "host_cpus": .intArray], required: ["vcpu", "host_cpus"]))
            let serial: Kind = .object(["mode": .oneOf(consoleModes), "file": .string, "socket": .string], required: ["mode"])
            let console: Kind = .object(["mode": .oneOf(consoleModes), "file": .string, "socket": .string,
                                         "iommu": .bool], required: ["mode"])
            // `payload` is not required: the real VMM accepts vm.create without it.
            object(json, at: path, [
                "cpus": .object(["boot_vcpus": .u8(min: 1), "max_vcpus": .u8(min: 1), "topology": topology,
                                 "kvm_hyperv": .bool, "max_phys_bits": .u8(min: 0), "affinity": affinity],
                                required: ["boot_vcpus", "max_vcpus"]),
                "memory": .object(["size": .u64, "hotplug_size": .u64, "hotplugged_size": .u64, "mergeable": .bool,
                                   "shared": .bool, "hugepages": .bool, "hugepage_size": .u64, "prefault": .bool,
                                   "thp": .bool, "hotplug_method": .oneOf(["Acpi", "VirtioMem"])],
                                  required: ["size"]),
                "payload": .object(["kernel": .string, "cmdline": .string, "initramfs": .string,
                                    "firmware": .string, "igvm": .string, "host_data": .string], required: []),
                "rate_limit_groups": .array(.object(["id": .string, "rate_limiter_config": rateLimiter],
                                                    required: ["id", "rate_limiter_config"])),
                "disks": .array(.object(DiskFields, required: [])),
                "net": .array(.object(NetFields, required: [])),
                "rng": .object(["src": .string, "iommu": .bool], required: ["src"]),
                "serial": serial,
                "console": console,
                "vsock": .object(["cid": .u64, "socket": .string, "iommu": .bool, "id": .string, "pci_segment": .u16],
                                 required: ["cid", "socket"]),
                "iommu": .bool, "watchdog": .bool, "pvpanic": .bool, "landlock_enable": .bool,
            ])
        }

        mutating func object(_ json: SimJSON, at path: String, _ fields: [String: Kind], required: [String] = []) {
            check(json, at: path, .object(fields, required: required))
        }

        mutating func check(_ json: SimJSON, at path: String, _ kind: Kind) {
            let name = path.isEmpty ? "body" : path
            func fail(_ expected: String) {
                problems.append("invalid type: \(json.typeName) at \(name), expected \(expected)")
            }
            switch kind {
            case .string: if json.stringValue == nil { fail("a string") }
            case .bool: if json.boolValue == nil { fail("a boolean") }
            case .u64: if (json.intValue ?? -1) < 0 { fail("an unsigned integer") }
            case .int: if json.intValue == nil { fail("an integer") }
            case .u16:
                if let n = json.intValue, (0...65535).contains(n) {} else { fail("an integer 0...65535") }
            case .u8(let min):
                if let n = json.intValue, (min...255).contains(n) {} else { fail("an integer \(min)...255") }
            case .oneOf(let values):
                if let s = json.stringValue, values.contains(s) {} else {
                    problems.append("unknown variant at \(name), expected one of \(values.joined(separator: ", "))")
                }
            case .intArray:
                guard let items = json.arrayValue else { return fail("a sequence of integers") }
                for (i, item) in items.enumerated() where item.intValue == nil {
                    problems.append("invalid type: \(item.typeName) at \(name)[\(i)], expected an integer")
                }
            case .array(let element):
                guard let items = json.arrayValue else { return fail("a sequence") }
                for (i, item) in items.enumerated() { check(item, at: "\(name)[\(i)]", element) }
            case .object(let fields, let required):
                guard let object = json.objectValue else { return fail("a map") }
                for key in required where object[key] == nil {
                    problems.append("missing field `\(key)`" + (path.isEmpty ? "" : " in \(path)"))
                }
                for (key, value) in object.sorted(by: { $0.key < $1.key }) {
                    guard let fieldKind = fields[key] else { continue }
                    check(value, at: path.isEmpty ? key : "\(path).\(key)", fieldKind)
                }
            }
        }
    }
}
