/// A size in bytes, written in specifications either as an integer number of bytes or as a string
/// with a binary unit.
///
/// Accepted strings: digits followed by nothing or `B` (bytes), `K`/`KiB`, `M`/`MiB`, `G`/`GiB`,
/// `T`/`TiB` — all powers of 1024 (`"256M"` and `"256MiB"` are both 268435456). Decimal units
/// (`MB`, `GB`), fractions, signs and spaces are rejected. Encoded as an integer number of bytes.
public struct ByteSize: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The size in bytes, never negative.
    public let bytes: Int

    public init(bytes: Int) {
        precondition(bytes >= 0, "a byte size is never negative")
        self.bytes = bytes
    }

    public static func kibibytes(_ n: Int) -> ByteSize { ByteSize(bytes: n << 10) }
    public static func mebibytes(_ n: Int) -> ByteSize { ByteSize(bytes: n << 20) }
    public static func gibibytes(_ n: Int) -> ByteSize { ByteSize(bytes: n << 30) }

    private static let units: [(suffix: String, shift: Int)] = [
        ("KiB", 10), ("MiB", 20), ("GiB", 30), ("TiB", 40),
        ("K", 10), ("M", 20), ("G", 30), ("T", 40), ("B", 0), ("", 0),
    ]

    /// Parses `"512M"`, `"2GiB"`, `"4096"`; throws a reason naming the accepted forms otherwise.
    public init(parsing text: String) throws(ByteSizeParseError) {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let suffix = String(text.dropFirst(digits.count))
        guard !digits.isEmpty else { throw ByteSizeParseError(text: text, problem: .notASize) }
        guard let unit = Self.units.first(where: { $0.suffix == suffix }) else {
            if ["KB", "MB", "GB", "TB", "kB"].contains(suffix) {
                throw ByteSizeParseError(text: text, problem: .decimalUnit)
            }
            throw ByteSizeParseError(text: text, problem: .notASize)
        }
        guard let value = Int(digits) else { throw ByteSizeParseError(text: text, problem: .tooLarge) }
        let (scaled, overflow) = value.multipliedReportingOverflow(by: 1 << unit.shift)
        guard !overflow else { throw ByteSizeParseError(text: text, problem: .tooLarge) }
        self.bytes = scaled
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            guard number >= 0 else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: decoder.codingPath, debugDescription: "\(number) is negative"))
            }
            self.bytes = number
            return
        }
        guard let text = try? container.decode(String.self) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath,
                debugDescription: "expected a number of bytes or a size such as \"512M\" or \"2GiB\""))
        }
        do {
            self = try ByteSize(parsing: text)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(bytes)
    }

    public static func < (lhs: ByteSize, rhs: ByteSize) -> Bool { lhs.bytes < rhs.bytes }

    /// The exact size in the largest binary unit that divides it: `256 MiB`, `1 GiB`, `1000 B`.
    public var description: String {
        for (suffix, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)]
        where bytes != 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift) \(suffix)"
        }
        return "\(bytes) B"
    }
}

/// Why a size string could not be read.
public struct ByteSizeParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Problem: Hashable, Sendable {
        case notASize, decimalUnit, tooLarge
    }

    public let text: String
    public let problem: Problem

    public init(text: String, problem: Problem) {
        self.text = text
        self.problem = problem
    }

    public var description: String {
        switch problem {
        case .notASize:
            "\"\(text)\" is not a size (expected bytes, or digits with K, M, G, T, KiB, MiB, GiB or TiB)"
        case .decimalUnit:
            "\"\(text)\" uses a decimal unit; sizes are binary: write K/M/G/T or KiB/MiB/GiB/TiB"
        case .tooLarge:
            "\"\(text)\" is too large"
        }
    }
}
