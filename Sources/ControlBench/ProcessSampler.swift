import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// CPU time and memory of one process, read from `/proc/<pid>/stat` and `/proc/<pid>/status`
/// (all threads together).
public struct ProcessSample: Sendable, Hashable {
    /// User + system CPU seconds since the process started.
    public var cpuSeconds: Double
    /// Resident set size now, and its peak (VmHWM).
    public var rssBytes: UInt64
    public var peakRSSBytes: UInt64
    public var at: ContinuousClock.Instant

    /// Share of one core used between `earlier` and this sample (1.0 = one core busy).
    public func coreShare(since earlier: ProcessSample) -> Double {
        let wall = Self.seconds(at - earlier.at)
        return wall > 0 ? (cpuSeconds - earlier.cpuSeconds) / wall : 0
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// A process's counters could not be read (it exited, or /proc is not there).
public struct ProcessSampleError: Error, Sendable, CustomStringConvertible {
    public var pid: Int32
    public var reason: String
    public var description: String { "process \(pid): \(reason)" }
}

public enum ProcessSampler {
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    public static func sample(pid: Int32) throws(ProcessSampleError) -> ProcessSample {
        let now = ContinuousClock.now
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else {
            throw ProcessSampleError(pid: pid, reason: "/proc/\(pid)/stat is not readable")
        }
        // After "pid (comm)": state is field 3, utime 14, stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw ProcessSampleError(pid: pid, reason: "/proc/\(pid)/stat has no utime/stime")
        }
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else {
            throw ProcessSampleError(pid: pid, reason: "/proc/\(pid)/status is not readable")
        }
        func kib(_ key: String) -> UInt64 {
            for line in status.split(separator: "\n") where line.hasPrefix(key) {
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                if parts.count >= 2, let value = UInt64(parts[1]) { return value << 10 }
            }
            return 0
        }
        return ProcessSample(cpuSeconds: (user + system) / ticksPerSecond, rssBytes: kib("VmRSS:"),
                             peakRSSBytes: kib("VmHWM:"), at: now)
    }

    /// Raises this process's open-file limit to its hard limit (children inherit it); returns it.
    @discardableResult
    public static func raiseOpenFileLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return UInt64(limit.rlim_cur)
    }
}
