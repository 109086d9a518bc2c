import Foundation
import LinuxSys
import NetPlumbing
import NodeCore
import Testing
import VMModel
#if canImport(Glibc)
import Glibc
#endif

/// The node's whole Cloud Hypervisor path against `ch-sim`: real jailed processes, real TAPs and
/// MACVTAPs in a fresh namespace, real cgroups. Every test ends with nothing of its scope left.
@Suite("Node VM lifecycle with the cloud-hypervisor backend", .enabled(if: nodeTestsCanRun, nodeTestsReason))
struct NodeLifecycleTests {
    @Test("create, start, pause, resume, reboot, stop, start, delete: the state right at each step")
    func fullLifecycle() async throws {
        try await NodeFixture.run { fixture, node in
            let vm = try await node.create(fixture.spec("life"))
            #expect(await vm.state == .created)
            try await vm.start()
            #expect(await vm.state == .running)
            let first = try #require(await vm.status.vmmProcess)
            fixture.track(first.pid)

            try await vm.pause()
            #expect(await vm.state == .paused)
            #expect(try await vm.info().vmmState == "Paused")
            try await vm.resume()
            #expect(await vm.state == .running)
            try await vm.reboot()
            #expect(await vm.state == .running)
            try await vm.stop()
            #expect(await vm.state == .shutdown)
            #expect(await vm.status.vmmProcess == nil)
            // The supervisor drained the console to its end before the exit was delivered.
            let log = try String(contentsOfFile: await vm.status.serialLog, encoding: .utf8)
            #expect(log.components(separatedBy: "QARAX-GUEST-READY").count - 1 == 2, "marker at boot and after the reboot")

            try await vm.start()
            #expect(await vm.state == .running)
            let second = try #require(await vm.status.vmmProcess)
            fixture.track(second.pid)
            #expect(second != first, "a fresh VMM per boot")
            let runtime = await vm.status.runtimeDirectory
            try await node.delete(vm.id)
            #expect(await vm.state == .deleted)
            #expect(!FileManager.default.fileExists(atPath: runtime))
            #expect(await node.list().isEmpty)
        }
    }

    @Test("the VMM runs confined: no capabilities, no_new_privs, seccomp, its own uid and cgroup")
    func confinement() async throws {
        try await NodeFixture.run { fixture, node in
            let vm = try await node.create(fixture.spec("jail"))
            try await vm.start()
            let pid = try #require(await vm.status.vmmProcess?.pid)
            fixture.track(pid)
            for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"] {
                #expect(procStatus(pid, set) == "0000000000000000", "\(set)")
            }
            #expect(procStatus(pid, "NoNewPrivs") == "1")
            #expect(procStatus(pid, "Seccomp") == "2")
            #expect(procStatus(pid, "Uid")?.split(separator: "\t").first == "65534")
            #expect(procStatus(pid, "Gid")?.split(separator: "\t").first == "65534")
            let cgroups = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
            for controller in ["memory", "pids"] {
                #expect(cgroups.split(separator: "\n").contains { $0.contains(controller) && $0.hasSuffix("/qarax/\(vm.id)") },
                        "\(controller) group of \(vm.id) in:\n\(cgroups)")
            }
            let environment = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))
            #expect(!String(decoding: environment, as: UTF8.self).contains("RUST_BACKTRACE"))
            try await node.delete(vm.id)
        }
    }

    @Test("a TAP NIC (MTU 9000, offloads): the VMM holds its queue, the device is gone after delete")
    func tapNIC() async throws {
        try await NodeFixture.run { fixture, node in
            let nic = NICSpec(id: "net0", kind: .tap, mtu: 9000, offloadTSO: true, offloadUFO: true, offloadCsum: true)
            let vm = try await node.create(fixture.spec("tap", nics: [nic]))
            try await vm.start()
            let pid = try #require(await vm.status.vmmProcess?.pid)
            fixture.track(pid)
            let name = HostPreparation.linkName(vmID: vm.id, nicID: "net0", kind: .tap)
            let link = try await NetPlumbing().link(name, in: fixture.namespace)
            #expect(link.mtu == 9000)
            #expect(descriptorTargets(of: pid).contains("/dev/net/tun"), "the VMM holds the TAP queue")
            let features = try await NetPlumbing().features(of: name, in: fixture.namespace)
            #expect(features.tapOffloads.contains(.checksum))
            try await node.delete(vm.id)
            await #expect(throws: NetPlumbingError.self) { _ = try await NetPlumbing().link(name, in: fixture.namespace) }
        }
    }

    @Test("a MACVTAP NIC on a veth parent: the VMM holds its tap device, gone after delete")
    func macvtapNIC() async throws {
        try await NodeFixture.run { fixture, node in
            _ = try await NetPlumbing().createVeth(VethRequest(name: "vp0", peer: "vp1"), in: fixture.namespace)
            let nic = NICSpec(id: "net0", kind: .macvtap, parent: "vp0", mode: .bridge)
            let vm = try await node.create(fixture.spec("mvt", nics: [nic]))
            try await vm.start()
            let pid = try #require(await vm.status.vmmProcess?.pid)
            fixture.track(pid)
            let name = HostPreparation.linkName(vmID: vm.id, nicID: "net0", kind: .macvtap)
            let device = await vm.status.runtimeDirectory + "/dev-net0/" + name
            #expect(descriptorTargets(of: pid).contains(device), "the VMM holds \(device)")
            _ = try await NetPlumbing().link(name, in: fixture.namespace)
            try await node.delete(vm.id)
            await #expect(throws: NetPlumbingError.self) { _ = try await NetPlumbing().link(name, in: fixture.namespace) }
        }
    }

    @Test("hot-plug a TAP NIC into a running VM, then remove it: the VMM gets the fd, the device goes")
    func hotplugNIC() async throws {
        try await NodeFixture.run { fixture, node in
            let vm = try await node.create(fixture.spec("hot"))
            try await vm.start()
            let pid = try #require(await vm.status.vmmProcess?.pid)
            fixture.track(pid)
            #expect(!descriptorTargets(of: pid).contains("/dev/net/tun"))
            let device = try await vm.addNIC(NICSpec(id: "net1", kind: .tap, mtu: 1500))
            #expect(device.id == "net1")
            #expect(device.pciAddress != nil)
            #expect(descriptorTargets(of: pid).contains("/dev/net/tun"), "the VMM holds the hot-plugged TAP")
            let name = HostPreparation.linkName(vmID: vm.id, nicID: "net1", kind: .tap)
            _ = try await NetPlumbing().link(name, in: fixture.namespace)
            try await vm.removeNIC(id: "net1")
            await #expect(throws: NetPlumbingError.self) { _ = try await NetPlumbing().link(name, in: fixture.namespace) }
            try await node.delete(vm.id)
        }
    }

    @Test("stop while the VM is still starting: it ends Shutdown, everything released")
    func stopWhileStarting() async throws {
        try await NodeFixture.run(.init(faults: "slow=100ms")) { fixture, node in
            let vm = try await node.create(fixture.spec("race"))
            let starting = Task { try await vm.start() }
            // The start enters Booting on the VM's actor before its first await.
            var turns = 0
            while await vm.state == .created, turns < 100_000 {
                await Task.yield()
                turns += 1
            }
            #expect(await vm.state == .booting)
            try await vm.stop()
            _ = await starting.result
            #expect(await vm.state == .shutdown)
            try await expectReleased(vm, fixture: fixture)
        }
    }

    @Test("the VMM crashes at vm.boot: the VM is Failed and everything released")
    func crashAtBoot() async throws {
        try await NodeFixture.run(.init(faults: "crash-at=vm.boot")) { fixture, node in
            let nic = NICSpec(id: "net0", kind: .tap)
            let vm = try await node.create(fixture.spec("crash", nics: [nic]))
            await #expect(throws: VMOperationError.self) { try await vm.start() }
            let state = await vm.state
            #expect(state.kind == .failed)
            #expect(state.failure.map { "\($0)" }?.contains("signal 9") == true, "\(state.failure.map { "\($0)" } ?? "")")
            try await expectReleased(vm, fixture: fixture, nic: "net0", kind: .tap)
        }
    }

    @Test("vm.create hangs: the call times out, the ladder tears the VMM down, the VM is Failed")
    func hungCreate() async throws {
        try await NodeFixture.run(.init(faults: "hang-at=vm.create", callTimeout: .milliseconds(500))) { fixture, node in
            let vm = try await node.create(fixture.spec("hang"))
            do {
                try await vm.start()
                Issue.record("start succeeded against a hung VMM")
            } catch {
                #expect("\(error)".contains("vm.create"), "\(error)")
            }
            let state = await vm.state
            #expect(state == .failed(.callFailed(.create, .init(.noAnswer, chain: ["cloud-hypervisor vm.create: no answer before the deadline"]))))
            try await expectReleased(vm, fixture: fixture)
        }
    }

    @Test("HTTP 500 at vm.pause: the error carries CH's chain and the VM keeps running")
    func pauseRefused() async throws {
        try await NodeFixture.run(.init(faults: "http500-at=vm.pause")) { fixture, node in
            let vm = try await node.create(fixture.spec("p500"))
            try await vm.start()
            fixture.track(await vm.status.vmmProcess?.pid)
            do throws(VMOperationError) {
                try await vm.pause()
                Issue.record("pause succeeded")
            } catch {
                guard case .callFailed(_, .pause, let callError) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(callError.kind == .rejected(status: 500))
                #expect(!callError.chain.isEmpty)
                #expect("\(error)".contains("HTTP 500"))
            }
            #expect(await vm.state == .running)
            try await node.delete(vm.id)
        }
    }

    @Test("the guest powers off: the VM is Shutdown and everything released")
    func guestPowerOff() async throws {
        try await NodeFixture.run { fixture, node in
            let vm = try await node.create(fixture.spec("off", cmdline: "console=ttyS0 qarax.poweroff=1"))
            // The guest may power off before or after start returns: either way it ends Shutdown.
            try? await vm.start()
            let state = try await within(.seconds(10), "shutdown after the guest's power-off") {
                await vm.wait(for: [.shutdown, .failed])
            }
            #expect(state == .shutdown)
            let log = try String(contentsOfFile: await vm.status.serialLog, encoding: .utf8)
            #expect(log.contains("QARAX-GUEST-READY"))
            try await expectReleased(vm, fixture: fixture)
        }
    }

    @Test("too few free hugepages: refused before launch, with the count missing, no process", .hugepagePool)
    func hugepageShortage() async throws {
        let free = Int((try? String(contentsOfFile: "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        try await NodeFixture.run { fixture, node in
            let memory = MemorySpec(size: .mebibytes(2 * (free + 8)), hugepages: true, hugepageSize: .mebibytes(2), shared: true)
            let vm = try await node.create(fixture.spec("huge", memory: memory))
            do {
                try await vm.start()
                Issue.record("start succeeded without hugepages")
            } catch {
                #expect("\(error)".contains("missing"), "\(error)")
            }
            let state = await vm.state
            guard case .failed(.launchFailed(let reason)) = state else {
                Issue.record("state \(state)")
                return
            }
            #expect(reason.contains("hugepages"))
            #expect(reason.contains("missing"))
            #expect(await vm.status.vmmProcess == nil, "no VMM was spawned")
        }
    }

    @Test("bad specs: every field error at once, nothing created")
    func badSpecs() async throws {
        try await NodeFixture.run { fixture, node in
            var spec = fixture.spec("bad", nics: [NICSpec(id: "net0", kind: .tap, mtu: 70000)])
            spec.cpus = CPUSpec(bootVCPUs: 0)
            spec.payload.kernel = "/etc/passwd"
            do throws(NodeError) {
                _ = try await node.create(spec)
                Issue.record("created")
            } catch {
                guard case .invalidSpec(let problems) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                let fields = Set(problems.map(\.field))
                #expect(fields.isSuperset(of: ["cpus.boot_vcpus", "nics[0].mtu", "payload.kernel"]), "\(problems)")
            }
            #expect(await node.list().isEmpty)
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: fixture.configuration.runtimeRoot)) ?? []).isEmpty)
        }
    }

    @Test("a restarted node re-adopts a running VM and can stop it")
    func readoption() async throws {
        try await NodeFixture.run { fixture, node in
            let vm = try await node.create(fixture.spec("adopt", nics: [NICSpec(id: "net0", kind: .tap)]))
            try await vm.start()
            let process = try #require(await vm.status.vmmProcess)
            fixture.track(process.pid)
            await node.detach()
            #expect(LeakCheck.exists(process.pid), "detach leaves the VMM running")

            let (restarted, recovery) = try await NodeRuntime.open(configuration: fixture.configuration, backend: fixture.backend)
            #expect(recovery.adopted == [vm.id])
            let again = try await restarted.vm(vm.id)
            #expect(await again.state == .running)
            #expect(await again.status.vmmProcess == process)
            try await restarted.pause(vm.id)
            #expect(await again.state == .paused)
            try await restarted.stop(vm.id)
            #expect(await again.state == .shutdown)
            try await restarted.delete(vm.id)
        }
    }

    @Test("at start-up the node deletes tagged links of VMs it does not know, and keeps its own")
    func reapsUnknownLinks() async throws {
        try await NodeFixture.run { fixture, node in
            let vm = try await node.create(fixture.spec("keep", nics: [NICSpec(id: "net0", kind: .tap)]))
            try await vm.start()
            fixture.track(await vm.status.vmmProcess?.pid)
            let stray = try LinkTag(vm: fixture.prefix + "-gone", nic: "net0")
            _ = try await NetPlumbing().createTap(TapRequest(name: "qxstray0", tag: stray), in: fixture.namespace)
            await node.detach()

            let (restarted, recovery) = try await NodeRuntime.open(configuration: fixture.configuration, backend: fixture.backend)
            #expect(recovery.reapedLinks == ["qxstray0"])
            await #expect(throws: NetPlumbingError.self) { _ = try await NetPlumbing().link("qxstray0", in: fixture.namespace) }
            let kept = HostPreparation.linkName(vmID: vm.id, nicID: "net0", kind: .tap)
            _ = try await NetPlumbing().link(kept, in: fixture.namespace)
            try await restarted.delete(vm.id)
        }
    }

    /// After a failure: no VMM, no link, no cgroup, no channel files; then the VM is deleted.
    private func expectReleased(_ vm: VMInstance, fixture: NodeFixture, nic: String? = nil,
                                kind: NICKind = .tap) async throws {
        #expect(await vm.status.vmmProcess == nil)
        let runtime = await vm.status.runtimeDirectory
        #expect(!FileManager.default.fileExists(atPath: runtime + "/boot"), "channel directory released")
        if let nic {
            let name = HostPreparation.linkName(vmID: vm.id, nicID: nic, kind: kind)
            await #expect(throws: NetPlumbingError.self) { _ = try await NetPlumbing().link(name, in: fixture.namespace) }
        }
        let leftovers = LeakCheck(netns: fixture.namespaceName, cgroupPrefix: fixture.prefix).scopedLeftovers()
        #expect(leftovers.isEmpty, "\(leftovers)")
        try await vm.delete()
    }
}

@Suite("Cloud Hypervisor launch plan")
struct CloudHypervisorLaunchPlanTests {
    @Test("pre-bound API socket, event FIFO, serial FIFO on stdout, CH seccomp on, exact environment")
    func plan() throws {
        let root = "/tmp/qx-chplan-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let runtime = try VMRuntimeDirectory(vmID: "plan1", root: root)
        try runtime.create(vmmOwner: nil)
        try FileManager.default.createDirectory(atPath: HostPreparation.channelDirectory(runtime), withIntermediateDirectories: true)
        let backend = try CloudHypervisorBackend(binary: "/usr/bin/cloud-hypervisor")
        let spec = VMSpec(name: "plan1", cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(64)),
                          payload: PayloadSpec(kernel: "/k"), serial: ConsoleSpec(mode: .tty))
        let context = VMMLaunchContext(vmID: "plan1", spec: spec, runtime: runtime, user: .nobody, cgroup: .inherit,
                                       nics: [], hugetlbfsMount: nil, seccomp: .vmmDefault,
                                       environment: ["LANG": "C.UTF-8"])
        let launch = try backend.launch(for: context)
        defer {
            launch.childEnds.closeAll()
            launch.nodeEnds.closeAll()
        }
        #expect(launch.plan.arguments == ["/usr/bin/cloud-hypervisor", "--api-socket", "fd=3", "--event-monitor", "fd=4",
                                          "--seccomp", "true"])
        #expect(launch.plan.environment == ["LANG": "C.UTF-8"])
        #expect(Set(launch.plan.fileDescriptors.keys) == [1, 2, 3, 4, 5, 6])
        #expect(launch.plan.user == .nobody)
        #expect(launch.plan.capabilities == .none)
        #expect(launch.plan.noNewPrivileges)
        #expect(launch.plan.seccomp == .vmmDefault)
        #expect(launch.outputs.map(\.name) == ["serial"])
        let api = try #require(launch.plan.fileDescriptors[3])
        #expect(LeakCheck.readLink("/proc/self/fd/\(api)")?.hasPrefix("socket:") == true)
        let events = try #require(launch.plan.fileDescriptors[4])
        #expect(LeakCheck.readLink("/proc/self/fd/\(events)") == HostPreparation.channelDirectory(runtime) + "/events.fifo")
        #expect(backend.validate(spec).isEmpty)
        var pty = spec
        pty.serial = ConsoleSpec(mode: .pty)
        #expect(backend.validate(pty).map(\.field) == ["serial.mode"])
    }
}
