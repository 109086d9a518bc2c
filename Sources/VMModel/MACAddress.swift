/// An Ethernet address, written `52:54:00:12:34:56` (hex pairs separated by colons, either case).
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    /// The six octets, first octet first.
    public let octets: [UInt8]

    /// Parses six colon-separated hex pairs; `nil` for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var octets: [UInt8] = []
        for part in parts {
            guard part.count == 2, part.allSatisfy(\.isHexDigit), let octet = UInt8(part, radix: 16) else { return nil }
            octets.append(octet)
        }
        self.octets = octets
    }

    public init(octets: [UInt8]) {
        precondition(octets.count == 6, "a MAC address has six octets")
        self.octets = octets
    }

    /// The group bit (least significant bit of the first octet): set for multicast and broadcast.
    public var isMulticast: Bool { octets[0] & 0x01 != 0 }

    /// The locally administered bit (second least significant bit of the first octet).
    public var isLocallyAdministered: Bool { octets[0] & 0x02 != 0 }

    public var isZero: Bool { octets.allSatisfy { $0 == 0 } }

    /// Lower-case colon-separated form, as the Linux kernel and cloud-hypervisor print it.
    public var description: String {
        octets.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}
