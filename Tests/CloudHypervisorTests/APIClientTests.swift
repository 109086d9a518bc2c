import CShims
import Foundation
import LinuxSys
import NodeCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A VmConfig body for the tiny guest.
func vmConfig(kernel: String, cmdline: String = "console=ttyS0", serialFile: String? = nil) -> [UInt8] {
    let serial = serialFile.map { #"{"mode":"File","file":"\#($0)"}"# } ?? #"{"mode":"Null"}"#
    return Array(#"""
    {"cpus":{"boot_vcpus":1,"max_vcpus":2},"memory":{"size":268435456},
     "payload":{"kernel":"\#(kernel)","cmdline":"\#(cmdline)"},
     "serial":\#(serial),"console":{"mode":"Off"}}
    """#.utf8)
}

/// Runs `body` against a fresh simulator and always kills and reaps it afterwards.
@discardableResult
func withSimulator<T>(_ arguments: [String] = [], environment: [String: String] = [:],
                      timeout: Duration = .seconds(10), maxResponseBytes: Int = 1 << 20,
                      _ body: (SimulatorProcess, CloudHypervisorClient) async throws -> T) async throws -> T {
    let sim = try SimulatorProcess(arguments: arguments, environment: environment)
    defer { sim.terminate() }
    let client = CloudHypervisorClient(socketPath: sim.socketPath, timeout: timeout, maxResponseBytes: maxResponseBytes)
    return try await body(sim, client)
}

func chain(of error: CHError) -> [String] {
    if case .api(_, let chain, _) = error { return chain }
    return []
}

@Suite("cloud-hypervisor API client against ch-sim")
struct APIClientTests {
    @Test func pingAnswersWithTheVMMsPid() async throws {
        try await withSimulator { sim, client in
            let ping = try await client.ping()
            #expect(ping.pid == Int64(sim.pid))
            #expect(ping.version.contains("ch-sim"))
        }
    }

    @Test func fullLifecycleFollowsTheVMMsStateMachine() async throws {
        try await withSimulator { sim, client in
            let kernel = try SimulatorProcess.kernel(in: sim.directory)
            try await client.create(config: vmConfig(kernel: kernel, serialFile: sim.serialPath))
            #expect(try await client.info().state == .created)
            try await client.boot()
            let running = try await client.info()
            #expect(running.state == .running)
            #expect(running.memoryActualSize == 268_435_456)
            try await client.pause()
            #expect(try await client.info().state == .paused)
            try await client.resume()
            #expect(try await client.info().state == .running)
            try await client.reboot()
            try await client.powerButton()
            try await client.shutdown()
            // vm.shutdown keeps the config: the VM is Created again and boots again.
            #expect(try await client.info().state == .created)
            try await client.boot()
            #expect(try await client.counters().isEmpty)
            try await client.resize(CHResize(desiredVcpus: 2))
            try await client.delete()
            try await client.delete()  // idempotent
            await #expect(throws: CHError.api(status: 500, chain: ["Error from API", "The VM info is not available", "VM is not created"], call: "vm.info")) {
                _ = try await client.info()
            }
            try await client.shutdownVMM()
            #expect(exitedNormally(await sim.waitForExit()) == 0)
            #expect(sim.text(sim.serialPath).contains("QARAX-GUEST-READY"))

            var parser = CHEventParser()
            let events = try parser.feed(try sim.eventBytes())
            try parser.finish()
            #expect(events.map(\.kind) == [
                .vmmStarting,
                .vmBooting, .vmBooted, .vmPausing, .vmPaused, .vmResuming, .vmResumed,
                .vmRebooting, .vmRebooted, .vmShutdown,
                .vmBooting, .vmBooted, .vmShutdown, .vmDeleted,
                .vmmShutdown,
            ])
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.timestamp <= $1.timestamp })
        }
    }

    @Test func invalidTransitionIs500WithTheChain() async throws {
        try await withSimulator { sim, client in
            try await client.create(config: vmConfig(kernel: try SimulatorProcess.kernel(in: sim.directory)))
            try await client.boot()
            try await client.pause()
            do {
                try await client.pause()
                Issue.record("pausing a paused VM succeeded")
            } catch let error as CHError {
                #expect(error == .api(status: 500, chain: ["Error from API", "The VM could not be paused",
                                                          "invalid VM state transition: Paused to Paused"], call: "vm.pause"))
                #expect(error.description.contains("invalid VM state transition: Paused to Paused"))
            }
            await #expect(throws: CHError.self) { try await client.boot() }
        }
    }

    @Test(arguments: [
        (#"{"cpus":{"boot_vcpus":1}}"#, "max_vcpus"),
        (#"{"cpus":"#, "not valid JSON"),
        (#"{"cpus":{"boot_vcpus":1,"max_vcpus":1},"memory":{"size":"big"}}"#, "memory.size"),
        (#"{"serial":{"mode":"Serial"}}"#, "Serial"),
        // Checked only by the OpenAPI document, not by the simulator's built-in checks:
        (#"{"balloon":{"size":"x"}}"#, "balloon.size"),
        (#"{"cpus":{"boot_vcpus":1,"max_vcpus":1.0}}"#, "max_vcpus"),
        (#"{"net":[{"id":"a"},]}"#, "not valid JSON"),
    ])
    func undeserializableBodyIs400(body: String, detail: String) async throws {
        try await withSimulator { _, client in
            do {
                try await client.create(config: Array(body.utf8))
                Issue.record("accepted \(body)")
            } catch let error as CHError {
                guard case .api(let status, let chain, let call) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(status == 400)
                #expect(call == "vm.create")
                #expect(chain.first == "Failed to deserialize JSON")
                #expect(chain.count == 2 && chain[1].contains(detail))
            }
        }
    }

    @Test func createIsLenientAndBootChecksThePayload() async throws {
        try await withSimulator { sim, client in
            await #expect(throws: CHError.api(status: 500, chain: ["Error from API", "The VM could not boot", "VM config is missing"], call: "vm.boot")) {
                try await client.boot()
            }
            // No payload: accepted at create, refused at boot.
            try await client.create(config: Array(#"{"cpus":{"boot_vcpus":1,"max_vcpus":1}}"#.utf8))
            await #expect(throws: CHError.self) { try await client.boot() }
            try await client.delete()
            try await client.create(config: vmConfig(kernel: sim.directory + "/no-such-kernel"))
            do {
                try await client.boot()
                Issue.record("booted a missing kernel")
            } catch let error as CHError {
                #expect(chain(of: error).contains("Cannot open kernel file"))
            }
            #expect(try await client.info().state == .created)
        }
    }

    @Test func addNetPassesDescriptorsWithTheRequest() async throws {
        try await withSimulator { sim, client in
            let tap = qx_memfd_create("fake-tap", 0)
            #expect(tap >= 0)
            defer { close(tap) }
            try await client.create(config: vmConfig(kernel: try SimulatorProcess.kernel(in: sim.directory)))
            // Cold add before boot: 204, no device info.
            #expect(try await client.addNet(config: Array(#"{"id":"net0","num_queues":2}"#.utf8), descriptors: [tap]) == nil)
            try await client.boot()
            let hot = try await client.addNet(config: Array(#"{"id":"net1","mac":"52:54:00:12:34:56"}"#.utf8), descriptors: [tap])
            #expect(hot?.id == "net1")
            #expect(hot?.bdf.hasPrefix("0000:00:") == true)
            // One descriptor per queue pair.
            await #expect(throws: CHError.self) {
                _ = try await client.addNet(config: Array(#"{"id":"net2","num_queues":4}"#.utf8), descriptors: [tap])
            }
            do {
                _ = try await client.addNet(config: Array(#"{"id":"net3","fds":[7,8]}"#.utf8), descriptors: [tap])
                Issue.record("accepted a descriptor count mismatch")
            } catch let error as CHError {
                #expect(chain(of: error).last?.contains("2 descriptors but 1 were passed") == true)
            }
            let counters = try await client.counters()
            #expect(Set(counters.keys) == ["net0", "net1"])
            try await client.removeDevice(id: "net1")
            await #expect(throws: CHError.self) { try await client.removeDevice(id: "net1") }
            // Hot-plugging a disk opens it at once.
            do {
                _ = try await client.addDisk(config: Array(#"{"id":"disk0","path":"\#(sim.directory)/missing.img"}"#.utf8))
                Issue.record("hot-plugged a missing disk")
            } catch let error as CHError {
                #expect(chain(of: error).contains("Cannot open disk path \(sim.directory)/missing.img"))
            }
            let image = sim.directory + "/disk.img"
            #expect(FileManager.default.createFile(atPath: image, contents: Data(count: 4096)))
            let disk = try await client.addDisk(config: Array(#"{"id":"disk1","path":"\#(image)"}"#.utf8))
            #expect(disk?.id == "disk1")
        }
    }

    @Test func descriptorsInAVmCreateBodyAreRefusedAtBoot() async throws {
        try await withSimulator { sim, client in
            let kernel = try SimulatorProcess.kernel(in: sim.directory)
            let body = #"{"cpus":{"boot_vcpus":1,"max_vcpus":1},"payload":{"kernel":"\#(kernel)"},"net":[{"id":"net0","fds":[5]}]}"#
            try await client.create(config: Array(body.utf8))
            do {
                try await client.boot()
                Issue.record("booted with descriptors that never reached the VMM")
            } catch let error as CHError {
                #expect(chain(of: error).contains("Cannot create virtio-net device"))
            }
        }
    }

    @Test func guestPowerOffEndsTheProcess() async throws {
        try await withSimulator { sim, client in
            let kernel = try SimulatorProcess.kernel(in: sim.directory)
            try await client.create(config: vmConfig(kernel: kernel, cmdline: "console=ttyS0 qarax.poweroff=1", serialFile: sim.serialPath))
            try await client.boot()
            #expect(exitedNormally(await sim.waitForExit()) == 0)
            await #expect(throws: CHError.vmmGone(call: "vmm.ping", detail: "nobody listens on \(sim.socketPath) (ECONNREFUSED)")) {
                _ = try await client.ping()
            }
            #expect(sim.text(sim.serialPath) == "QARAX-GUEST-READY\n")
            var parser = CHEventParser()
            let kinds = try parser.feed(try sim.eventBytes()).map(\.kind)
            #expect(kinds.suffix(2) == [.vmShutdown, .vmmShutdown])
        }
    }

    @Test func requestRacingAPowerOffReportsTheVMMGone() async throws {
        try await withSimulator(["--sim-fault", "closed-channel-after-poweroff"]) { sim, client in
            let kernel = try SimulatorProcess.kernel(in: sim.directory)
            try await client.create(config: vmConfig(kernel: kernel, cmdline: "qarax.poweroff=1"))
            try await client.boot()
            do {
                _ = try await client.info()
                Issue.record("vm.info succeeded after the power-off")
            } catch let error as CHError {
                guard case .vmmGone(let call, let detail) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(call == "vm.info")
                #expect(detail.contains("receiving on a closed channel"))
            }
            #expect(exitedNormally(await sim.waitForExit()) == 0)
        }
    }

    @Test func vmmShutdownAnswers200AndExits() async throws {
        try await withSimulator { sim, client in
            let response = try await client.call(.vmmShutdown)
            #expect(response == CHResponse(status: 200, body: []))
            #expect(exitedNormally(await sim.waitForExit()) == 0)
        }
    }

    @Test func concurrentCallsEachGetTheirAnswer() async throws {
        try await withSimulator { sim, client in
            let pids = try await withThrowingTaskGroup(of: Int64?.self) { group in
                for _ in 0..<8 { group.addTask { try await client.ping().pid } }
                return try await group.reduce(into: [Int64?]()) { $0.append($1) }
            }
            #expect(pids == Array(repeating: Int64(sim.pid), count: 8))
        }
    }
}

@Suite("fault injection")
struct FaultInjectionTests {
    @Test func crashMidBootIsVMMGone() async throws {
        try await withSimulator(["--sim-fault", "crash-at=vm.boot"]) { sim, client in
            try await client.create(config: vmConfig(kernel: try SimulatorProcess.kernel(in: sim.directory)))
            do {
                try await client.boot()
                Issue.record("boot succeeded")
            } catch let error as CHError {
                guard case .vmmGone(let call, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(call == "vm.boot")
            }
            #expect(killedBySignal(await sim.waitForExit()) == SIGKILL)
        }
    }

    @Test func hungAPITimesOut() async throws {
        try await withSimulator(["--sim-fault", "hang-at=vm.create"], timeout: .milliseconds(300)) { sim, client in
            await #expect(throws: CHError.timeout(call: "vm.create")) {
                try await client.create(config: vmConfig(kernel: "/nonexistent"))
            }
        }
    }

    @Test func callsQueuedBehindAHungVMMTimeOutToo() async throws {
        // More callers than the listen backlog: later connects block until their deadline.
        try await withSimulator(["--sim-fault", "hang-at=vmm.ping"], timeout: .milliseconds(300)) { _, client in
            let errors = await withTaskGroup(of: CHError?.self) { group in
                for _ in 0..<40 {
                    group.addTask {
                        do throws(CHError) {
                            _ = try await client.ping()
                            return nil
                        } catch {
                            return error
                        }
                    }
                }
                return await group.reduce(into: [CHError?]()) { $0.append($1) }
            }
            #expect(errors.count == 40)
            #expect(errors.allSatisfy { $0 == .timeout(call: "vmm.ping") })
        }
    }

    @Test func cancellingAHungCallEndsIt() async throws {
        try await withSimulator(["--sim-fault", "hang-at=vm.boot"], timeout: .seconds(600)) { _, client in
            let task = Task { try await client.boot() }
            // Cancellation may land before or during the call; either way it must end promptly.
            task.cancel()
            let result = await task.result
            #expect(throws: CHError.cancelled(call: "vm.boot")) { try result.get() }
        }
    }

    @Test func injected500KeepsTheChain() async throws {
        try await withSimulator(environment: ["QARAX_CH_SIM_FAULTS": "http500-at=vm.pause"]) { sim, client in
            try await client.create(config: vmConfig(kernel: try SimulatorProcess.kernel(in: sim.directory)))
            try await client.boot()
            do {
                try await client.pause()
                Issue.record("pause succeeded")
            } catch let error as CHError {
                #expect(chain(of: error).contains("Injected fault"))
            }
            #expect(try await client.info().state == .running)
        }
    }

    @Test func slowAnswersStillArrive() async throws {
        try await withSimulator(["--sim-fault", "slow=20ms"]) { _, client in
            let ping = try await client.ping()
            #expect(ping.version.contains("ch-sim"))
        }
    }

    @Test func oversizedAnswerIsRefused() async throws {
        try await withSimulator(["--sim-fault", "oversize-at=vm.info"], maxResponseBytes: 64 * 1024) { _, client in
            await #expect(throws: CHError.responseTooLarge(call: "vm.info", limit: 64 * 1024)) {
                _ = try await client.info()
            }
            // The cap is per answer: the next call is fine.
            _ = try await client.ping()
        }
    }

    @Test func oversizedAnswerWithoutLengthHeaderIsRefusedWhileReading() async throws {
        // An answer under the header check but over the cap in total is cut off while reading.
        try await withSimulator(["--sim-fault", "oversize-at=vm.info,oversize-bytes=70000"], maxResponseBytes: 70_010) { _, client in
            await #expect(throws: CHError.responseTooLarge(call: "vm.info", limit: 70_010)) {
                _ = try await client.info()
            }
        }
    }
}
