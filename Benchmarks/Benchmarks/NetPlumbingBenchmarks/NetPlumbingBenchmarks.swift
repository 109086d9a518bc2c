import Benchmark
import LinuxSys
import NetPlumbing
#if canImport(Glibc)
import Glibc
#endif

// TAP and MACVTAP set-up through NetPlumbing (netlink + ioctls) next to the same work done by
// `ip` commands, in one run, in a scratch network namespace made for the run.

let namespaceName = "qxbench-\(getpid())"
let namespace = NetworkNamespace.named(namespaceName)
let deviceDirectory = "/tmp/qxbench-dev-\(getpid())"
let plumbing = NetPlumbing()

/// Full TAP configuration: owner, group, offloads, MTU 9000, up; tagged.
func tapRequest(_ name: String) throws -> TapRequest {
    TapRequest(name: name, tag: try LinkTag(vm: "bench", nic: "0"), owner: 1000, group: 1000,
               offloads: [.checksum, .tso4, .tso6, .tsoECN, .ufo], mtu: 9000)
}

func macvtapRequest(_ name: String) throws -> MacvtapRequest {
    MacvtapRequest(name: name, tag: try LinkTag(vm: "bench", nic: "1"), parent: "bvp0", mode: .bridge,
                   mac: "52:54:00:12:34:56", deviceDirectory: deviceDirectory)
}

/// Runs `/usr/sbin/ip -n <ns> args…` and waits for it; a failure is a benchmark error.
func ip(_ args: [String]) throws {
    let argv = ["ip", "-n", namespaceName] + args
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for arg in cArgs { free(arg) } }
    var pid: pid_t = 0
    let r = posix_spawn(&pid, "/usr/sbin/ip", nil, nil, &cArgs, environ)
    if r != 0 { throw SystemError("posix_spawn ip", errno: r) }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        if errno != EINTR { throw SystemError("waitpid ip", errno: errno) }
    }
    if status != 0 { throw SystemError("ip \(args.joined(separator: " ")) exited with status \(status)", errno: EIO) }
}

var configuration: Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: [.wallClock, .cpuTotal, .throughput],
        timeUnits: .microseconds,
        warmupIterations: 5,
        maxDuration: .seconds(5),
        maxIterations: 2000
    )
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.setup = {
        _ = try await NetworkNamespace.create(named: namespaceName)
        _ = try await plumbing.createVeth(VethRequest(name: "bvp0", peer: "bvp1"), in: namespace)
        if mkdir(deviceDirectory, 0o700) < 0 && errno != EEXIST { throw SystemError("mkdir \(deviceDirectory)", errno: errno) }
    }
    Benchmark.teardown = {
        _ = rmdir(deviceDirectory)
        try NetworkNamespace.delete(named: namespaceName)
    }

    // Each operation is measured on its own (the rest of the cycle runs outside the measured
    // region), then the whole cycle: deleting a link waits for the kernel's RCU grace periods,
    // which cost the same whoever asks.

    Benchmark("TAP create+configure (netlink)", configuration: configuration) { benchmark in
        let request = try tapRequest("btap0")
        benchmark.startMeasurement()
        blackHole(try await plumbing.createTap(request, in: namespace))
        benchmark.stopMeasurement()
        try await plumbing.delete("btap0", in: namespace)
    }

    Benchmark("TAP create+configure (ip)", configuration: configuration) { benchmark in
        benchmark.startMeasurement()
        try ipTapCreate("btap1")
        benchmark.stopMeasurement()
        try await plumbing.delete("btap1", in: namespace)
    }

    Benchmark("TAP delete (netlink)", configuration: configuration) { benchmark in
        _ = try await plumbing.createTap(try tapRequest("btap2"), in: namespace)
        benchmark.startMeasurement()
        try await plumbing.delete("btap2", in: namespace)
        benchmark.stopMeasurement()
    }

    Benchmark("TAP delete (ip)", configuration: configuration) { benchmark in
        _ = try await plumbing.createTap(try tapRequest("btap3"), in: namespace)
        benchmark.startMeasurement()
        try ip(["link", "del", "btap3"])
        benchmark.stopMeasurement()
    }

    Benchmark("TAP create+configure+delete (netlink)", configuration: configuration) { benchmark in
        let request = try tapRequest("btap4")
        for _ in benchmark.scaledIterations {
            blackHole(try await plumbing.createTap(request, in: namespace))
            try await plumbing.delete("btap4", in: namespace)
        }
    }

    Benchmark("TAP create+configure+delete (ip)", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            try ipTapCreate("btap5")
            try ip(["link", "del", "btap5"])
        }
    }

    Benchmark("MACVTAP create (netlink)", configuration: configuration) { benchmark in
        let request = try macvtapRequest("bmvt0")
        benchmark.startMeasurement()
        blackHole(try await plumbing.createMacvtap(request, in: namespace))
        benchmark.stopMeasurement()
        try await plumbing.delete("bmvt0", deviceDirectory: deviceDirectory, in: namespace)
    }

    Benchmark("MACVTAP create (ip)", configuration: configuration) { benchmark in
        benchmark.startMeasurement()
        try ipMacvtapCreate("bmvt1")
        benchmark.stopMeasurement()
        try await plumbing.delete("bmvt1", in: namespace)
    }

    Benchmark("MACVTAP create+delete (netlink)", configuration: configuration) { benchmark in
        let request = try macvtapRequest("bmvt2")
        for _ in benchmark.scaledIterations {
            blackHole(try await plumbing.createMacvtap(request, in: namespace))
            try await plumbing.delete("bmvt2", deviceDirectory: deviceDirectory, in: namespace)
        }
    }

    Benchmark("MACVTAP create+delete (ip)", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            try ipMacvtapCreate("bmvt3")
            try ip(["link", "del", "bmvt3"])
        }
    }
}

/// What `createTap` does, as far as `ip` can: it cannot set offloads or the vnet header size.
func ipTapCreate(_ name: String) throws {
    try ip(["tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr", "user", "1000", "group", "1000"])
    try ip(["link", "set", "dev", name, "mtu", "9000", "alias", "qarax:vm=bench,nic=0", "up"])
}

/// What `createMacvtap` does, except the private device node (ip makes none).
func ipMacvtapCreate(_ name: String) throws {
    try ip(["link", "add", "link", "bvp0", "name", name, "address", "52:54:00:12:34:57", "type", "macvtap", "mode", "bridge"])
    try ip(["link", "set", "dev", name, "alias", "qarax:vm=bench,nic=1", "up"])
}
