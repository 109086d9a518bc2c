import Benchmark

let benchmarks: @Sendable () -> Void = {
    Benchmark("placeholder-NetPlumbing") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(1) }
    }
}
