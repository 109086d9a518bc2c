import Crypto

/// SHA-256 (swift-crypto), streaming, as the lowercase hex the inventory stores. Used to
/// fingerprint image files and requests.
public struct SHA256Digest: Sendable {
    private var hasher = SHA256()

    public init() {}

    public mutating func update<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        bytes.withContiguousStorageIfAvailable { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
            ?? hasher.update(data: Array(bytes))
    }

    /// The digest as 64 lowercase hex digits.
    public mutating func finalizeHex() -> String {
        hasher.finalize().map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    public static func hex<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var digest = SHA256Digest()
        digest.update(bytes)
        return digest.finalizeHex()
    }
}
