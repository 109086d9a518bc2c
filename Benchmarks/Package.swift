// swift-tools-version: 6.1
// Micro-benchmarks (ordo-one/package-benchmark). A package of its own so the product build and
// the test run never compile the benchmark framework. Run from this folder:
//   swift package --allow-writing-to-package-directory benchmark
import PackageDescription

let package = Package(
    name: "qarax-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "qarax", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "NetPlumbingBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NetPlumbing", package: "qarax"),
                .product(name: "LinuxSys", package: "qarax"),
            ],
            path: "Benchmarks/NetPlumbingBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SpawnBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "LinuxSys", package: "qarax"),
            ],
            path: "Benchmarks/SpawnBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "NodeBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NodeCore", package: "qarax"),
                .product(name: "LinuxSys", package: "qarax"),
                .product(name: "VMModel", package: "qarax"),
            ],
            path: "Benchmarks/NodeBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
