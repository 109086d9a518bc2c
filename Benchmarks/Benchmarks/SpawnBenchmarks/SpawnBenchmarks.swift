// Jailed spawn vs posix_spawn of the same trivial binary, alone and 64 at a time, in one run.
// Needs root (uid change, cgroups-free but mount/PID namespaces). Run from Benchmarks/:
//   swift package --allow-writing-to-package-directory benchmark --target SpawnBenchmarks
import Benchmark
import Glibc
import LinuxSys

private let binary = "/usr/bin/true"
private let concurrency = 64
private let jailRoot = "/tmp/qx-spawn-bench-jail-\(getpid())"

/// seccomp (built-in VMM policy) + no capabilities + rlimits + uid/gid 65534 + fd map + setsid.
private let confinedPlan = SpawnPlan(
    executable: binary,
    resourceLimits: [.core: ResourceLimit(0), .nofile: ResourceLimit(1024), .memlock: ResourceLimit(64 << 10)]
)

/// The confined plan inside a jail (new mount namespace, bind mounts, pivot_root) and a new PID namespace.
private let jailedPlan: SpawnPlan = {
    var plan = confinedPlan
    plan.executable = "/true"
    plan.arguments = ["/true"]
    plan.jail = JailPlan(root: jailRoot, mounts: [BindMount(source: binary, target: "/true"), BindMount("/lib"), BindMount("/lib64")],
                         devices: JailPlan.presentDevices())
    plan.newPIDNamespace = true
    return plan
}()

/// Launches `plan`; returns once the program runs (its execve succeeded).
private func launch(_ plan: SpawnPlan) -> SpawnedProcess {
    do {
        return try Launcher.launchBlocking(plan)
    } catch {
        fatalError("benchmark launch: \(error)")
    }
}

private func reap(_ process: consuming SpawnedProcess) {
    do {
        let exit = try process.waitBlocking()
        if exit != .exited(0) { fatalError("benchmark child: \(exit)") }
    } catch {
        fatalError("benchmark wait: \(error)")
    }
}

private func launchAndWait(_ plan: SpawnPlan) { reap(launch(plan)) }

/// posix_spawn returns once the child exec'd (glibc waits for it, CLONE_VFORK).
private func posixSpawn() -> pid_t {
    var pid: pid_t = 0
    let path = strdup(binary)
    defer { free(path) }
    let argv: [UnsafeMutablePointer<CChar>?] = [path, nil]
    let envp: [UnsafeMutablePointer<CChar>?] = [nil]
    let result = posix_spawn(&pid, binary, nil, nil, argv, envp)
    if result != 0 { fatalError("posix_spawn: \(result)") }
    return pid
}

private func posixReap(_ pid: pid_t) {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
}

private func posixSpawnAndWait() { posixReap(posixSpawn()) }

private func nanoseconds(since start: ContinuousClock.Instant) -> Int {
    let elapsed = ContinuousClock.now - start
    return Int(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
}

private final class Job {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// Runs `body` on `count` threads at once and returns when all are done.
private func onThreads(_ count: Int, _ body: @escaping @Sendable () -> Void) {
    var threads: [pthread_t] = []
    for _ in 0..<count {
        var thread = pthread_t()
        let job = Unmanaged.passRetained(Job(body))
        let created = pthread_create(&thread, nil, { context in
            if let context { Unmanaged<Job>.fromOpaque(context).takeRetainedValue().body() }
            return nil
        }, job.toOpaque())
        if created != 0 { fatalError("pthread_create: \(created)") }
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
}

private func makeJailRoot() {
    mkdir(jailRoot, 0o755)
}

private func removeJailRoot() {
    // Mount points left by the launcher: files and (nested) directories, all empty.
    for path in ["/true", "/dev/kvm", "/dev/net/tun", "/dev/vhost-net"] { unlink(jailRoot + path) }
    for path in ["/lib", "/lib64", "/dev/net", "/dev", ""] { rmdir(jailRoot + path) }
}

private let perSpawn = BenchmarkMetric.custom("amortized ns per spawn+reap", useScalingFactor: false)
private let spawnAndReap = BenchmarkMetric.custom("ns spawn+reap", useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock], timeUnits: .microseconds, warmupIterations: 5,
        maxDuration: .seconds(4), maxIterations: 1000
    )
    Benchmark.setup = { makeJailRoot() }
    Benchmark.teardown = { removeJailRoot() }

    // Alone: wall clock is the spawn (clone → exec succeeded); the custom metric adds the exit and reap.
    let alone = Benchmark.Configuration(metrics: [.wallClock, spawnAndReap], timeUnits: .microseconds)
    Benchmark("posix_spawn alone", configuration: alone) { benchmark in
        let start = ContinuousClock.now
        benchmark.startMeasurement()
        let pid = posixSpawn()
        benchmark.stopMeasurement()
        posixReap(pid)
        benchmark.measurement(spawnAndReap, nanoseconds(since: start))
    }
    for (name, plan) in [("confined", confinedPlan), ("jailed", jailedPlan)] {
        Benchmark("\(name) spawn alone", configuration: alone) { benchmark in
            let start = ContinuousClock.now
            benchmark.startMeasurement()
            let process = launch(plan)
            benchmark.stopMeasurement()
            reap(process)
            benchmark.measurement(spawnAndReap, nanoseconds(since: start))
        }
    }

    let batch = Benchmark.Configuration(metrics: [.wallClock, perSpawn], timeUnits: .milliseconds,
                                        warmupIterations: 1, maxDuration: .seconds(6), maxIterations: 60)
    func concurrent(_ name: String, _ body: @escaping @Sendable () -> Void) {
        Benchmark("\(name) ×\(concurrency) concurrent", configuration: batch) { benchmark in
            for _ in benchmark.scaledIterations {
                let start = ContinuousClock.now
                onThreads(concurrency, body)
                benchmark.measurement(perSpawn, nanoseconds(since: start) / concurrency)
            }
        }
    }
    concurrent("posix_spawn") { posixSpawnAndWait() }
    concurrent("confined spawn") { launchAndWait(confinedPlan) }
    concurrent("jailed spawn") { launchAndWait(jailedPlan) }
}
