import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension ClusterPKI {
    /// Creates `dir` with mode 0700 when it does not exist.
    static func makeDirectory(_ dir: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw PKIError(subject: dir, reason: "exists and is not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw PKIError(subject: dir, reason: "cannot create the directory: \(error)")
        }
    }

    /// Writes a private key: created exclusively with mode 0600, so it is never readable by others,
    /// not even for a moment, and never replaces an existing file.
    static func writeSecret(_ text: String, to path: String) throws {
        try write(text, to: path, mode: 0o600)
    }

    static func writePublic(_ text: String, to path: String) throws {
        try write(text, to: path, mode: 0o644)
    }

    private static func write(_ text: String, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw PKIError(subject: path, reason: "open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fchmod(fd, mode) == 0 else {
            throw PKIError(subject: path, reason: "fchmod: \(String(cString: strerror(errno)))")
        }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw PKIError(subject: path, reason: "write: \(String(cString: strerror(errno)))")
            }
            bytes = bytes.dropFirst(written)
        }
        guard fsync(fd) == 0 else { throw PKIError(subject: path, reason: "fsync: \(String(cString: strerror(errno)))") }
    }
}
