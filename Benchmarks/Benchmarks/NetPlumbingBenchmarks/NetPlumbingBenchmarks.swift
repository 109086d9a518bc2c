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

    Benchmark("TAP create+configure+delete (netlink)", configuration: configuration) { benchmark in
        let request = try tapRequest("btap0")
        for _ in benchmark.scaledIterations {
            let result = try await plumbing.createTap(request, in: namespace)
            blackHole(result)
            try await plumbing.delete("btap0", in: namespace)
        }
    }

    Benchmark("TAP create+configure+delete (ip)", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            try ip(["tuntap", "add", "dev", "btap1", "mode", "tap", "vnet_hdr", "user", "1000", "group", "1000"])
            try ip(["link", "set", "dev", "btap1", "mtu", "9000", "alias", "qarax:vm=bench,nic=0", "up"])
            try ip(["link", "del", "btap1"])
        }
    }

    Benchmark("MACVTAP create+delete (netlink)", configuration: configuration) { benchmark in
        let request = try macvtapRequest("bmvt0")
        for _ in benchmark.scaledIterations {
            let result = try await plumbing.createMacvtap(request, in: namespace)
            blackHole(result)
            try await plumbing.delete("bmvt0", deviceDirectory: deviceDirectory, in: namespace)
        }
    }

    Benchmark("MACVTAP create+delete (ip)", configuration: configuration) { benchmark in
        for _ in benchmark.scaledIterations {
            try ip(["link", "add", "link", "bvp0", "name", "bmvt1", "address", "52:54:00:12:34:57", "type", "macvtap", "mode", "bridge"])
            try ip(["link", "set", "dev", "bmvt1", "alias", "qarax:vm=bench,nic=1", "up"])
            try ip(["link", "del", "bmvt1"])
        }
    }
}
