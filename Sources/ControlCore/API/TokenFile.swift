import Foundation

/// The API's bearer token: read from its file, or created (256 random bits, mode 0600) on first start.
public enum TokenFile {
    /// The token at `path`; a token file others can read is refused (it grants the whole API).
    public static func loadOrCreate(at path: String) throws -> String {
        if let mode = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int,
           mode & 0o077 != 0 {
            throw TokenFileError(path: path, mode: mode)
        }
        if let data = FileManager.default.contents(atPath: path) {
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !token.isEmpty { return token }
        }
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in
            let byte = String(UInt8.random(in: 0...255, using: &generator), radix: 16)
            return byte.count == 1 ? "0" + byte : byte
        }.joined()
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
        guard FileManager.default.createFile(atPath: path, contents: Data((token + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        return token
    }
}

/// The token file is readable or writable by group or others.
public struct TokenFileError: Error, Sendable, Hashable, CustomStringConvertible {
    public let path: String
    public let mode: Int

    public var description: String {
        "token file \(path): mode \(String(mode & 0o777, radix: 8)) lets group or others read it; run chmod 600 \(path)"
    }
}
