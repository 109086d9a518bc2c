/// One thing wrong with a specification: the field path (`nics[1].mtu`) and why.
public struct SpecProblem: Error, Hashable, Sendable, CustomStringConvertible {
    public let field: String
    public let reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    /// `nics[1].mtu: 70000 is above 65535`
    public var description: String { "\(field): \(reason)" }
}

/// Limits a specification is checked against; each names where it comes from.
public enum VMSpecLimits {
    /// cloud-hypervisor's x86-64 limit with the legacy MP table / APIC ids (`MAX_SUPPORTED_CPUS_LEGACY`).
    public static let maxVCPUs = 254
    /// cloud-hypervisor rejects more than two threads per core on x86-64.
    public static let maxThreadsPerCore = 2
    /// Guest memory granularity: the x86-64 huge page size, and the VMM's hotplug granularity.
    public static let memoryAlignment = ByteSize.mebibytes(2)
    /// The hugepage sizes an x86-64 host offers.
    public static let hugepageSizes: [ByteSize] = [.mebibytes(2), .gibibytes(1)]
    /// Linux's `ETH_MIN_MTU` / `ETH_MAX_MTU` bounds for a link's MTU.
    public static let mtuRange = 68...65535
    /// cloud-hypervisor's `MIN_MTU` for an `mtu` it applies itself (vhost-user NICs).
    public static let vhostUserMinMTU = 1280
    /// Virtqueue sizes: powers of two up to the virtio maximum.
    public static let maxQueueSize = 32768
    /// cloud-hypervisor requires block queues larger than 2 (`MINIMUM_BLOCK_QUEUE_SIZE`).
    public static let minBlockQueueSize = 4
    /// `VIRTIO_BLK_ID_BYTES`: the longest disk serial the guest can read.
    public static let maxDiskSerialBytes = 20
    /// cloud-hypervisor's `MAX_NUM_PCI_SEGMENTS`.
    public static let pciSegments = 96
    /// x86 `COMMAND_LINE_SIZE` less the terminating NUL.
    public static let maxCmdlineBytes = 2047
    /// Linux `PATH_MAX` less the terminating NUL.
    public static let maxPathBytes = 4095
    /// vsock context ids 0, 1 and 2 are reserved, `UINT32_MAX` is `VMADDR_CID_ANY`.
    public static let vsockCIDs = 3...4_294_967_294
}

/// Names and ids: 1 to 63 characters from `A-Z a-z 0-9 . _ -`, starting with a letter or digit —
/// safe in file names, cgroup names, logs and cloud-hypervisor device ids (which reserve `__`).
public enum SpecIdentifier {
    public static let maxLength = 63

    /// Why `text` is not a valid name or id, or `nil` when it is.
    public static func problem(_ text: String) -> String? {
        if text.isEmpty { return "is empty" }
        if text.utf8.count > maxLength { return "\"\(text)\" is longer than \(maxLength) characters" }
        let allowed = text.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (CharacterSetASCII.isAlphanumeric(scalar) || "._-".unicodeScalars.contains(scalar))
        }
        if !allowed { return "\"\(text)\" has characters outside A-Z a-z 0-9 . _ -" }
        if let first = text.unicodeScalars.first, !CharacterSetASCII.isAlphanumeric(first) {
            return "\"\(text)\" does not start with a letter or digit"
        }
        return nil
    }
}

enum CharacterSetASCII {
    static func isAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        default: false
        }
    }
}

/// Checks on host paths that need no file system: absolute, no `..`, no NUL, bounded length.
/// The node additionally resolves them against its configured roots.
public enum SpecPath {
    /// Why `path` is not acceptable as a host path, or `nil` when it is.
    public static func problem(_ path: String) -> String? {
        if path.isEmpty { return "is empty" }
        if path.utf8.contains(0) { return "contains a NUL byte" }
        if path.utf8.count > VMSpecLimits.maxPathBytes { return "is longer than \(VMSpecLimits.maxPathBytes) bytes" }
        if !path.hasPrefix("/") { return "\"\(path)\" is not an absolute path" }
        if path.split(separator: "/").contains("..") { return "\"\(path)\" has a \"..\" component" }
        return nil
    }
}

/// Linux interface names: 1 to 15 bytes, no `/`, `:` or whitespace, not `.` or `..`.
public enum InterfaceNameRule {
    public static func problem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        let bad = bytes.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7F }
        if bytes.isEmpty || bytes.count > 15 || bad || name == "." || name == ".." {
            return "\"\(name)\" is not an interface name (1-15 bytes, no '/', ':' or whitespace)"
        }
        return nil
    }
}

/// A specification was refused: every problem found, each with its field path.
public struct SpecValidationError: Error, Hashable, Sendable, CustomStringConvertible {
    public let problems: [SpecProblem]

    public init(problems: [SpecProblem]) {
        self.problems = problems
    }

    /// One problem per line.
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
