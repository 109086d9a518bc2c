// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "qarax",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "qarax-node", targets: ["qarax-node"]),
        .executable(name: "qarax-control", targets: ["qarax-control"]),
        .executable(name: "qarax-bench", targets: ["qarax-bench"]),
        .library(name: "NetPlumbing", targets: ["NetPlumbing"]),
        .library(name: "LinuxSys", targets: ["LinuxSys"]),
        .library(name: "NodeCore", targets: ["NodeCore"]),
        .library(name: "ControlCore", targets: ["ControlCore"]),
        .library(name: "Wire", targets: ["Wire"]),
        .library(name: "ClusterPKI", targets: ["ClusterPKI"]),
        .library(name: "VMModel", targets: ["VMModel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // System libraries, found through pkg-config; scripts/setup installs the -dev packages.
        .systemLibrary(name: "CLibNL", pkgConfig: "libnl-route-3.0",
                       providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        .systemLibrary(name: "CLibSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CLibCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),

        // The thin C layer: only what Swift cannot reach (ioctls, variadics, raw syscalls, fork/exec child).
        .target(
            name: "CShims",
            dependencies: ["CLibNL", "CLibSeccomp", "CLibCap"],
            cSettings: [.define("_GNU_SOURCE"), .unsafeFlags(["-Wall", "-Wextra", "-Werror"])]
        ),

        // Owned fds, errno-carrying errors, namespaces, processes: the syscall layer.
        .target(name: "LinuxSys", dependencies: ["CShims", "CLibSeccomp", "CLibCap"], swiftSettings: strict),

        // Host networking over netlink (libnl) and ioctls.
        .target(name: "NetPlumbing", dependencies: ["LinuxSys", "CShims", "CLibNL"], swiftSettings: strict),

        // The operator's VM specification and its validation: pure Swift + Foundation, no C libraries.
        .target(name: "VMModel", swiftSettings: strict),

        // Cloud Hypervisor's REST API types and a validator for its OpenAPI document (bundled).
        .target(
            name: "CloudHypervisorAPI",
            dependencies: [.product(name: "Yams", package: "Yams")],
            resources: [.copy("Resources")],
            swiftSettings: strict
        ),

        // Everything qarax-node does, as a library the tests can reach.
        .target(
            name: "NodeCore",
            dependencies: [
                "NetPlumbing", "LinuxSys", "CShims", "VMModel", "CloudHypervisorAPI", "Wire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // A test double of cloud-hypervisor's REST API (not a VMM): library + thin executable.
        .target(
            name: "CHSimulator",
            dependencies: [
                "LinuxSys", "CShims", "CloudHypervisorAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(name: "ch-sim", dependencies: ["CHSimulator"], swiftSettings: strict),

        // The control <-> node protocol: frames, schema'd messages, connections, TLS. No libnl, no NodeCore.
        .target(
            name: "Wire",
            dependencies: [
                "VMModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Proto/wire.proto"],
            swiftSettings: strict
        ),

        // The cluster's certificate authority: CA, node and client certificates as PEM files.
        .target(
            name: "ClusterPKI",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),

        // A seeded mutation fuzzer over the frame decoder; run by hand, never by `swift test`.
        .executableTarget(name: "wire-fuzz", dependencies: ["Wire", .product(name: "NIOCore", package: "swift-nio")],
                          swiftSettings: strict),

        .executableTarget(
            name: "qarax-node",
            dependencies: ["NodeCore", "LinuxSys", "VMModel", "Wire", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        // The control daemon: SQLite inventory, node registry, placement, reconciliation, REST API.
        .target(
            name: "ControlCore",
            dependencies: [
                "VMModel", "Wire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [.copy("Resources")],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "qarax-control",
            dependencies: ["ControlCore", "ClusterPKI", "VMModel", "Wire", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),

        // The benchmark harness (boot latency by phase against a direct launch): library + thin executable.
        .target(
            name: "BenchCore",
            dependencies: ["NodeCore", "LinuxSys", "VMModel", "CloudHypervisorAPI"],
            swiftSettings: strict
        ),
        // The control-plane scale harness: simulated Wire nodes, API load, the discard baseline.
        .target(
            name: "ControlBench",
            dependencies: [
                "ControlCore", "Wire", "ClusterPKI", "VMModel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "qarax-bench",
            dependencies: ["BenchCore", "ControlBench", "NodeCore", "VMModel", "Wire",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),

        // A C program the launcher tests start to observe a confined process from the inside.
        .executableTarget(name: "qx-probe", path: "Sources/qx-probe"),

        .testTarget(name: "LinuxSysTests", dependencies: ["LinuxSys", "qx-probe"], swiftSettings: strict),
        .testTarget(name: "NetPlumbingTests", dependencies: ["NetPlumbing", "LinuxSys"], swiftSettings: strict),
        .testTarget(
            name: "NodeCoreTests",
            dependencies: ["NodeCore", "NetPlumbing", "LinuxSys", "VMModel", "CloudHypervisorAPI", "ch-sim", "Wire"],
            resources: [.copy("Golden")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ControlCoreTests",
            dependencies: [
                "ControlCore", "ControlBench", "VMModel", "qarax-control", "Wire", "ClusterPKI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WireTests",
            dependencies: [
                "Wire", "ClusterPKI", "VMModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ClusterPKITests",
            dependencies: [
                "ClusterPKI",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BenchCoreTests",
            dependencies: ["BenchCore", "ControlBench", "NodeCore", "VMModel", "qarax-bench", "ch-sim", "qarax-control"],
            exclude: ["Golden"],
            swiftSettings: strict
        ),
        // scripts/run-demo end to end with the debug binaries (real daemons, TLS, a real tiny guest).
        .testTarget(name: "DemoTests", dependencies: ["qarax-node", "qarax-control"], swiftSettings: strict),
        .testTarget(name: "VMModelTests", dependencies: ["VMModel"], swiftSettings: strict),
        .testTarget(name: "CloudHypervisorAPITests", dependencies: ["CloudHypervisorAPI"], swiftSettings: strict),
        // The real qarax-node daemon and CLI binaries driving real VMMs (QEMU under KVM, ch-sim).
        .testTarget(
            name: "NodeE2ETests",
            dependencies: ["NodeCore", "NetPlumbing", "LinuxSys", "Wire", "qarax-node", "ch-sim"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CloudHypervisorTests",
            dependencies: ["NodeCore", "CHSimulator", "LinuxSys", "CShims", "VMModel", "CloudHypervisorAPI", "ch-sim"],
            swiftSettings: strict
        ),
    ]
)
