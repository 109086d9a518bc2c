#if canImport(Glibc)
import Glibc
#endif

/// Reads, writes, creates and removes files of the cgroup filesystems.
enum CgroupFS {
    static func trim(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }

    /// The file's content without surrounding whitespace.
    static func read(_ path: String) throws(SystemError) -> String {
        trim(try readProcFile(path))
    }

    /// Writes `value` with one `write` call, as the cgroup filesystem expects.
    static func write(_ value: String, to path: String) throws(SystemError) {
        let fd = try FileDescriptor.open(path, O_WRONLY)
        let bytes = Array(value.utf8)
        let written = try retryingOnInterrupt("write '\(value)' to \(path)") {
            Int32(truncatingIfNeeded: bytes.withUnsafeBytes { Glibc.write(fd.rawValue, $0.baseAddress, $0.count) })
        }
        if Int(written) != bytes.count { throw SystemError("write '\(value)' to \(path) (short write)", errno: EIO) }
    }

    /// Creates a directory; returns false when it existed already.
    @discardableResult
    static func makeDirectory(_ path: String) throws(SystemError) -> Bool {
        if mkdir(path, 0o755) == 0 { return true }
        let code = errno
        if code == EEXIST { return false }
        throw SystemError("mkdir \(path)", errno: code)
    }

    /// Removes a cgroup directory; a missing one is not an error.
    static func removeDirectory(_ path: String) throws(SystemError) {
        if rmdir(path) == 0 { return }
        let code = errno
        if code == ENOENT { return }
        throw SystemError("rmdir \(path)", errno: code)
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// The pids listed in a `cgroup.procs` file; a missing file lists none.
    static func pids(_ procsFile: String) throws(SystemError) -> [Int32] {
        do {
            return try readProcFile(procsFile).split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
        } catch where error.errno == ENOENT || error.errno == ENODEV {
            return []
        }
    }

    /// The value after `key` in a flat-keyed file such as `memory.events` or `memory.oom_control`.
    static func keyedValue(_ key: String, in text: String) -> UInt64? {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == key { return UInt64(parts[1]) }
        }
        return nil
    }
}
