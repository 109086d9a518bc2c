import Benchmark

let benchmarks: @Sendable () -> Void = {
    Benchmark("placeholder-Spawn") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(1) }
    }
}
