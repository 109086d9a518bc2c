import BenchCore
import Testing

@Suite("Statistics: percentiles and seeded bootstrap intervals")
struct StatisticsTests {
    static let oneToTen = (1...10).map(Double.init)

    @Test("Percentiles interpolate between closest ranks", arguments: [
        (0.0, 1.0), (50.0, 5.5), (90.0, 9.1), (99.0, 9.91), (100.0, 10.0), (25.0, 3.25),
    ])
    func percentiles(p: Double, expected: Double) throws {
        let value = try #require(Statistics.percentile(Self.oneToTen.shuffled(), p))
        #expect(abs(value - expected) < 1e-9)
    }

    @Test("Edge cases: no samples, one sample, out-of-range percentiles")
    func edges() {
        #expect(Statistics.percentile([], 50) == nil)
        #expect(Statistics.percentile([7], 99) == 7)
        #expect(Statistics.percentile([1, 2], 150) == 2)
        #expect(Statistics.percentile([1, 2], -5) == 1)
        #expect(Statistics.bootstrap([], percentile: 50) == nil)
    }

    @Test("The generator is SplitMix64: known first outputs for seed 0")
    func generator() {
        var rng = SeededGenerator(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
    }

    @Test("A fixed seed gives the same interval; the interval holds the point estimate")
    func bootstrapSeeded() throws {
        let a = try #require(Statistics.bootstrap(Self.oneToTen, percentile: 50, seed: 42))
        let b = try #require(Statistics.bootstrap(Self.oneToTen, percentile: 50, seed: 42))
        #expect(a == b)
        #expect(a.value == 5.5)
        #expect(a.low <= a.value && a.value <= a.high)
        #expect(a.low >= 1 && a.high <= 10)
        #expect(a.low < a.high)
        #expect(a == Estimate(value: 5.5, low: StatisticsGolden.medianLow, high: StatisticsGolden.medianHigh))
    }

    @Test("Constant data has a zero-width interval")
    func constant() throws {
        let e = try #require(Statistics.bootstrap([3, 3, 3, 3], percentile: 90))
        #expect(e == Estimate(value: 3, low: 3, high: 3))
    }

    @Test("The difference of percentiles: exact for shifted data, interval around it")
    func difference() throws {
        let base = Self.oneToTen
        let shifted = base.map { $0 + 2 }
        let d = try #require(Statistics.bootstrapDifference(shifted, base, percentile: 50, seed: 7))
        #expect(abs(d.value - 2) < 1e-9)
        #expect(d.low <= 2 && d.high >= 2)
        #expect(Statistics.bootstrapDifference([], base, percentile: 50) == nil)
    }
}
