public import Foundation

/// How the node writes and reads cloud-hypervisor bodies: sorted keys, unescaped slashes, no nulls.
public enum CloudHypervisorJSON {
    /// Encodes a body; `pretty` adds indentation (for golden files and logs).
    public static func encode(_ value: some Encodable, pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
                                          : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try JSONDecoder().decode(type, from: data)
    }
}
