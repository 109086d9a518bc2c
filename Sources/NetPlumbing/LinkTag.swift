/// The mark qarax puts on every link it creates: the VM and NIC it belongs to, stored in the
/// link's ifalias as `qarax:vm=<vm>,nic=<nic>`.
public struct LinkTag: Hashable, Sendable, CustomStringConvertible {
    public static let prefix = "qarax:"
    public static let maximumVMIDLength = 64
    public static let maximumNICIDLength = 32

    public let vmID: String
    public let nicID: String

    /// Ids use ASCII letters, digits, '-', '_' and '.'; a VM id has at most 64 bytes, a NIC id 32.
    public init(vm vmID: String, nic nicID: String) throws(NetPlumbingError) {
        if let reason = Self.problem(with: vmID, maximum: Self.maximumVMIDLength) {
            throw .invalidArgument(field: "tag.vm", value: vmID, reason: reason)
        }
        if let reason = Self.problem(with: nicID, maximum: Self.maximumNICIDLength) {
            throw .invalidArgument(field: "tag.nic", value: nicID, reason: reason)
        }
        self.vmID = vmID
        self.nicID = nicID
    }

    /// The tag in an ifalias, or nil when the alias is no qarax tag.
    public init?(alias: String) {
        guard alias.hasPrefix(Self.prefix) else { return nil }
        let fields = alias.dropFirst(Self.prefix.count).split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count == 2, fields[0].hasPrefix("vm="), fields[1].hasPrefix("nic=") else { return nil }
        guard let tag = try? LinkTag(vm: String(fields[0].dropFirst(3)), nic: String(fields[1].dropFirst(4))) else {
            return nil
        }
        self = tag
    }

    /// The ifalias text.
    public var alias: String { "\(Self.prefix)vm=\(vmID),nic=\(nicID)" }

    public var description: String { alias }

    static func problem(with id: String, maximum: Int) -> String? {
        let bytes = Array(id.utf8)
        if bytes.isEmpty { return "is empty" }
        if bytes.count > maximum { return "is \(bytes.count) bytes long; at most \(maximum) are allowed" }
        for b in bytes where !isIDByte(b) {
            let shown = b >= 0x21 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x" + String(b, radix: 16, uppercase: true)
            return "contains \(shown); allowed are letters, digits, '-', '_' and '.'"
        }
        return nil
    }

    static func isIDByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F || b == 0x2E
    }
}

/// A link qarax created, as found in a namespace.
public struct OwnedLink: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let index: Int32
    public let kind: String?
    public let tag: LinkTag

    public var description: String { "\(name) (#\(index), \(kind ?? "?")) \(tag)" }
}
