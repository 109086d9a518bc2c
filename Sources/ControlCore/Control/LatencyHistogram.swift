import Synchronization

/// A cumulative latency histogram with fixed 1-2-5 buckets from 10 µs to 10 s, cheap enough to
/// record on every node event, exported in the Prometheus text format.
public final class LatencyHistogram: Sendable {
    /// Upper bounds of the buckets, in seconds; one more bucket (+Inf) holds the rest.
    public static let bounds: [Double] = [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2,
                                          0.1, 0.2, 0.5, 1, 2, 5, 10]

    private struct State {
        var counts = [UInt64](repeating: 0, count: LatencyHistogram.bounds.count + 1)
        var sum: Double = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Records one observation (negative values, e.g. from clock offsets between hosts, count as 0).
    public func record(seconds: Double) {
        let value = max(0, seconds)
        let index = Self.bounds.firstIndex { value <= $0 } ?? Self.bounds.count
        state.withLock {
            $0.counts[index] += 1
            $0.sum += value
        }
    }

    /// Per-bucket counts (not cumulative), the last one for +Inf, and the sum of all observations.
    public var snapshot: (counts: [UInt64], sum: Double) {
        state.withLock { ($0.counts, $0.sum) }
    }

    /// The histogram as Prometheus text: `_bucket{le=…}` (cumulative), `_sum` and `_count`.
    public func prometheus(name: String, help: String) -> String {
        let (counts, sum) = snapshot
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative: UInt64 = 0
        for (index, bound) in Self.bounds.enumerated() {
            cumulative += counts[index]
            out += "\(name)_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative += counts[Self.bounds.count]
        out += "\(name)_bucket{le=\"+Inf\"} \(cumulative)\n\(name)_sum \(sum)\n\(name)_count \(cumulative)\n"
        return out
    }
}
