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
        .library(name: "NetPlumbing", targets: ["NetPlumbing"]),
        .library(name: "LinuxSys", targets: ["LinuxSys"]),
        .library(name: "NodeCore", targets: ["NodeCore"]),
        .library(name: "VMModel", targets: ["VMModel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
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
                "NetPlumbing", "LinuxSys", "CShims", "VMModel", "CloudHypervisorAPI",
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

        .executableTarget(
            name: "qarax-node",
            dependencies: ["NodeCore", "LinuxSys", "VMModel", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "qarax-control",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),

        // A C program the launcher tests start to observe a confined process from the inside.
        .executableTarget(name: "qx-probe", path: "Sources/qx-probe"),

        .testTarget(name: "LinuxSysTests", dependencies: ["LinuxSys", "qx-probe"], swiftSettings: strict),
        .testTarget(name: "NetPlumbingTests", dependencies: ["NetPlumbing", "LinuxSys"], swiftSettings: strict),
        .testTarget(
            name: "NodeCoreTests",
            dependencies: ["NodeCore", "NetPlumbing", "LinuxSys", "VMModel", "CloudHypervisorAPI", "ch-sim"],
            resources: [.copy("Golden")],
            swiftSettings: strict
        ),
        .testTarget(name: "VMModelTests", dependencies: ["VMModel"], swiftSettings: strict),
        .testTarget(name: "CloudHypervisorAPITests", dependencies: ["CloudHypervisorAPI"], swiftSettings: strict),
        // The real qarax-node daemon and CLI binaries driving real VMMs (QEMU under KVM, ch-sim).
        .testTarget(
            name: "NodeE2ETests",
            dependencies: ["NodeCore", "NetPlumbing", "LinuxSys", "qarax-node", "ch-sim"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CloudHypervisorTests",
            dependencies: ["NodeCore", "CHSimulator", "LinuxSys", "CShims", "VMModel", "CloudHypervisorAPI", "ch-sim"],
            swiftSettings: strict
        ),
    ]
)
