/// An Ethernet MAC address, written `aa:bb:cc:dd:ee:ff`.
public struct MacAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Any 6 bytes, as read back from the kernel.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.bytes = bytes
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (case-insensitive) and requires a usable unicast address:
    /// not all zero, group bit (bit 0 of the first byte) clear.
    public init(_ text: String, field: String = "mac") throws(NetPlumbingError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else {
            throw .invalidArgument(field: field, value: text, reason: "is not six ':'-separated hex bytes")
        }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else {
                throw .invalidArgument(field: field, value: text, reason: "has '\(part)', which is not a two-digit hex byte")
            }
            bytes.append(byte)
        }
        if bytes.allSatisfy({ $0 == 0 }) {
            throw .invalidArgument(field: field, value: text, reason: "is all zero")
        }
        if bytes[0] & 1 != 0 {
            throw .invalidArgument(field: field, value: text, reason: "is a multicast address; a link needs a unicast one")
        }
        self.bytes = bytes
    }

    public var description: String {
        bytes.map { b in
            let hex = String(b, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}
