/// A validated Linux network interface name.
///
/// The kernel accepts 1…15 bytes (IFNAMSIZ 16 with the NUL), no `/`, `:` or white space, and not
/// `.` or `..`. qarax is stricter so names are safe in paths, logs and sysfs: ASCII letters,
/// digits, `-`, `_` and `.`.
public struct InterfaceName: Hashable, Sendable, CustomStringConvertible {
    public static let maximumLength = 15

    public let rawValue: String

    public init(_ name: String) throws(NetPlumbingError) {
        if let reason = Self.problem(with: name) {
            throw .invalidArgument(field: "name", value: name, reason: reason)
        }
        self.rawValue = name
    }

    public var description: String { rawValue }

    /// Why `name` is not acceptable, or nil when it is.
    public static func problem(with name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return "is empty" }
        if bytes.count > maximumLength {
            return "is \(bytes.count) bytes long; interface names have at most \(maximumLength)"
        }
        if name == "." || name == ".." { return "is reserved" }
        for b in bytes {
            let ok = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == 0x2D || b == 0x5F || b == 0x2E
            if !ok {
                let shown = b >= 0x21 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : String(format: b)
                return "contains \(shown); allowed are letters, digits, '-', '_' and '.'"
            }
        }
        return nil
    }

    private static func String(format byte: UInt8) -> Swift.String {
        "byte 0x" + Swift.String(byte, radix: 16, uppercase: true)
    }
}
