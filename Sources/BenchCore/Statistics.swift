/// A small, seeded, reproducible random source (SplitMix64): the same seed gives the same
/// bootstrap resamples on every machine.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A value with its confidence interval.
public struct Estimate: Codable, Hashable, Sendable {
    public let value: Double
    public let low: Double
    public let high: Double

    public init(value: Double, low: Double, high: Double) {
        self.value = value
        self.low = low
        self.high = high
    }
}

/// Order statistics and bootstrap intervals over samples in milliseconds.
public enum Statistics {
    /// The `p`-th percentile (0...100) by linear interpolation between closest ranks (the
    /// "type 7" definition of R and NumPy); nil for no samples.
    public static func percentile(_ samples: [Double], _ p: Double) -> Double? {
        guard !samples.isEmpty else { return nil }
        return percentile(sorted: samples.sorted(), p)
    }

    static func percentile(sorted: [Double], _ p: Double) -> Double {
        if sorted.count == 1 { return sorted[0] }
        let rank = min(max(p, 0), 100) / 100 * Double(sorted.count - 1)
        let lower = Int(rank.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        let fraction = rank - Double(lower)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
    }

    public static func median(_ samples: [Double]) -> Double? { percentile(samples, 50) }

    /// The percentile with a percentile-bootstrap interval at `confidence` (e.g. 0.95), from
    /// `resamples` resamples drawn with a generator seeded by `seed`.
    public static func bootstrap(_ samples: [Double], percentile p: Double, confidence: Double = 0.95,
                                 resamples: Int = 2000, seed: UInt64 = 0x5EED) -> Estimate? {
        guard let point = percentile(samples, p) else { return nil }
        var rng = SeededGenerator(seed: seed)
        var stats: [Double] = []
        stats.reserveCapacity(resamples)
        var draw = [Double](repeating: 0, count: samples.count)
        for _ in 0..<max(1, resamples) {
            for i in draw.indices { draw[i] = samples[Int(rng.next() % UInt64(samples.count))] }
            draw.sort()
            stats.append(percentile(sorted: draw, p))
        }
        stats.sort()
        let tail = (1 - confidence) / 2 * 100
        return Estimate(value: point, low: percentile(sorted: stats, tail), high: percentile(sorted: stats, 100 - tail))
    }

    /// The difference of a percentile between two sample sets (`a` minus `b`), with a bootstrap
    /// interval that resamples both sets independently.
    public static func bootstrapDifference(_ a: [Double], _ b: [Double], percentile p: Double,
                                           confidence: Double = 0.95, resamples: Int = 2000,
                                           seed: UInt64 = 0x5EED) -> Estimate? {
        guard let pa = percentile(a, p), let pb = percentile(b, p) else { return nil }
        var rng = SeededGenerator(seed: seed)
        var stats: [Double] = []
        var da = [Double](repeating: 0, count: a.count)
        var db = [Double](repeating: 0, count: b.count)
        for _ in 0..<max(1, resamples) {
            for i in da.indices { da[i] = a[Int(rng.next() % UInt64(a.count))] }
            for i in db.indices { db[i] = b[Int(rng.next() % UInt64(b.count))] }
            da.sort()
            db.sort()
            stats.append(percentile(sorted: da, p) - percentile(sorted: db, p))
        }
        stats.sort()
        let tail = (1 - confidence) / 2 * 100
        return Estimate(value: pa - pb, low: percentile(sorted: stats, tail), high: percentile(sorted: stats, 100 - tail))
    }
}
