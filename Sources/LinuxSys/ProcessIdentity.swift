#if canImport(Glibc)
import Glibc
#endif

/// A process as the kernel can tell it apart from a later one that reuses its pid: the pid and
/// the start time (clock ticks since boot, field 22 of `/proc/PID/stat`).
///
/// Stored in durable per-VM state so a restarted node re-adopts only the very process it started.
public struct ProcessIdentity: Hashable, Sendable, Codable, CustomStringConvertible {
    public let pid: Int32
    public let startTime: UInt64

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// Reads the identity of the live process `pid`.
    public static func of(pid: Int32) throws(SystemError) -> ProcessIdentity {
        let text = try readProcFile("/proc/\(pid)/stat")
        guard let startTime = parseStartTime(stat: text) else {
            throw SystemError("parse /proc/\(pid)/stat", errno: EINVAL)
        }
        return ProcessIdentity(pid: pid, startTime: startTime)
    }

    /// Whether a process with this pid still exists and is the same one (same start time).
    public func isAlive() -> Bool {
        (try? ProcessIdentity.of(pid: pid)) == self
    }

    public var description: String { "pid \(pid) (start \(startTime))" }

    /// Field 22 of a `/proc/PID/stat` line. The command name (field 2) may hold spaces and
    /// parentheses, so fields are counted after the last ')'.
    static func parseStartTime(stat: String) -> UInt64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let rest = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // rest[0] is field 3 (state); field 22 is rest[19].
        guard rest.count > 19 else { return nil }
        return UInt64(rest[19])
    }
}

/// Reads a small procfs/sysfs file whole (they report size 0, so read until EOF).
public func readProcFile(_ path: String, limit: Int = 1 << 20) throws(SystemError) -> String {
    let fd = try FileDescriptor.open(path, O_RDONLY)
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let n = chunk.withUnsafeMutableBytes { read(fd.rawValue, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw SystemError("read \(path)", errno: errno)
        }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}
