import Foundation
import Glibc
import LinuxSys
import NodeCore
import Wire
import Testing

/// The real `qarax-node serve` and CLI binaries driving the tiny guest on both backends: QEMU under
/// KVM for real, cloud-hypervisor through its simulator (`ch-sim`).
@Suite("node daemon end to end")
struct NodeLifecycleTests {
    static let backends: [ServeProcess.Backend] = E2E.canRunQEMU ? [.qemu, .cloudHypervisor] : [.cloudHypervisor]

    @Test("create, start, marker, pause, resume, reboot, stop, start, delete — state right at each step; nothing left",
          .enabled(if: E2E.hasKVM, "needs /dev/kvm"), .enabled(if: E2E.isRoot, "needs root (jail, cgroups, TAPs)"),
          arguments: backends)
    func lifecycle(backend: ServeProcess.Backend) async throws {
        let serve = try ServeProcess(backend: backend)
        defer { serve.cleanUp() }
        let ready = try await serve.start()
        #expect(ready.contains("backend=\(backend == .qemu ? "qemu" : "cloud_hypervisor")"), "\(ready)")
        let name = E2E.unique("life")

        let created = await serve.cli("vm", "create", "--name", name, "--kernel", serve.kernel, "--cmdline", "console=ttyS0",
                                      "--memory", "64M", "-o", "json")
        try #require(created.status == 0, "\(created)")
        #expect(try await serve.info(name).state == "Created")

        let started = await serve.cli("vm", "start", name)
        try #require(started.status == 0, "\(started)\n\(serve.log)")
        let running = try await serve.info(name)
        #expect(running.state == "Running")
        let pid = try #require(running.pid)
        let identity = try ProcessIdentity.of(pid: pid)
        try await serve.awaitConsole(name)

        try checkConfinement(pid: pid, cgroupParent: serve.cgroupParent, vmID: running.id)

        #expect(await serve.cli("vm", "pause", name).status == 0)
        let paused = try await serve.info(name)
        #expect(paused.state == "Paused")
        if backend == .qemu { #expect(paused.vmmState == "paused") }
        #expect(await serve.cli("vm", "resume", name).status == 0)
        let resumed = try await serve.info(name)
        #expect(resumed.state == "Running")
        if backend == .qemu { #expect(resumed.vmmState == "running") }

        #expect(await serve.cli("vm", "reboot", name).status == 0)
        #expect(try await serve.info(name).state == "Running")
        #expect(try await serve.info(name).pid == pid, "a reboot keeps the VMM process")
        if backend == .qemu { try await serve.awaitConsole(name, count: 2) }

        let illegal = await serve.cli("vm", "resume", name)
        #expect(illegal.status == 1 && illegal.stderr.contains("cannot resume vm '\(name)': it is Running"), "\(illegal)")

        #expect(await serve.cli("vm", "stop", name).status == 0)
        let stopped = try await serve.info(name)
        #expect(stopped.state == "Shutdown")
        #expect(stopped.pid == nil)
        #expect(!Host.isRunning(identity))
        #expect(Host.cgroups(under: serve.cgroupParent).isEmpty)

        // A stopped VM boots again with a fresh VMM.
        #expect(await serve.cli("vm", "start", name).status == 0)
        let again = try await serve.info(name)
        #expect(again.state == "Running")
        let secondPid = try #require(again.pid)
        let secondIdentity = try ProcessIdentity.of(pid: secondPid)

        let listed = await serve.cli("vm", "list")
        #expect(listed.stdout.contains("NAME") && listed.stdout.contains(name) && listed.stdout.contains("Running"), "\(listed)")

        let deleted = await serve.cli("vm", "delete", name)
        #expect(deleted.status == 0, "\(deleted)")
        #expect(!Host.isRunning(secondIdentity))
        let list = await serve.cli("vm", "list", "-o", "json")
        #expect(try JSONDecoder().decode([VMReport].self, from: Data(list.stdout.utf8)).isEmpty)
        #expect(await serve.cli("vm", "info", name).status == 1)

        #expect(Host.cgroups(under: serve.cgroupParent).isEmpty)
        #expect(Host.files(under: serve.runtimeRoot).isEmpty, "\(Host.files(under: serve.runtimeRoot))")
        #expect(try await serve.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: serve.socket))
        #expect(Host.processes(mentioning: serve.directory).isEmpty)
    }

    @Test("vm run prints the time to the console line; vm console prints the log; a bad spec names its fields",
          .enabled(if: E2E.isRoot, "needs root (cgroups)"))
    func runAndErrors() async throws {
        let serve = try ServeProcess(backend: .cloudHypervisor)
        defer { serve.cleanUp() }
        try await serve.start()
        let name = E2E.unique("run")
        let run = await serve.cli("vm", "run", "--name", name, "--kernel", serve.kernel, "--memory", "64M",
                                  "--wait-for-console", E2E.marker, "--timeout", "20s")
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("on the console after"), "\(run)")
        let console = await serve.cli("vm", "console", name)
        #expect(console.stdout.contains(E2E.marker), "\(console)")

        let specFile = serve.directory + "/spec.json"
        let specName = E2E.unique("spec")
        let json = #"{"name": "\#(specName)", "cpus": {"boot_vcpus": 1}, "memory": {"size": 67108864}, "payload": {"kernel": "\#(serve.kernel)"}, "serial": {"mode": "tty"}}"#
        try Data(json.utf8).write(to: URL(fileURLWithPath: specFile))
        let fromSpec = await serve.cli("vm", "create", "--spec", specFile, "-o", "json")
        #expect(fromSpec.status == 0, "\(fromSpec)")
        #expect(try await serve.info(specName).memoryBytes == 64 << 20)
        try Data(#"{"name": "x", "cpus": {"boot_vcpus": 1, "bogus": 1}, "memory": {"size": 67108864}, "payload": {}}"#.utf8)
            .write(to: URL(fileURLWithPath: specFile))
        let typo = await serve.cli("vm", "create", "--spec", specFile)
        #expect(typo.status != 0 && typo.stderr.contains("cpus.bogus"), "\(typo)")
        #expect(await serve.cli("vm", "delete", specName).status == 0)

        let duplicate = await serve.cli("vm", "create", "--name", name, "--kernel", serve.kernel)
        #expect(duplicate.status == 1 && duplicate.stderr.contains("already exists"), "\(duplicate)")

        let bad = await serve.cli("vm", "create", "--name", E2E.unique("bad"), "--kernel", "/etc/passwd",
                                  "--memory", "63M", "--net", "tap,mtu=70000")
        #expect(bad.status == 1, "\(bad)")
        for field in ["memory.size", "nics[0].mtu", "payload.kernel"] {
            #expect(bad.stderr.contains("  \(field): "), "\(field) in \(bad.stderr)")
        }
        let flag = await serve.cli("vm", "create", "--name", "x", "--kernel", serve.kernel, "--net", "tap,parent=eth0")
        #expect(flag.status != 0 && flag.stderr.contains("--net \"tap,parent=eth0\""), "\(flag)")

        // The socket is root-only; a Wire frame announcing more than 1 MiB is refused with a
        // Goodbye carrying a PROTOCOL error, and the daemon goes on serving.
        var info = stat()
        #expect(stat(serve.socket, &info) == 0 && info.st_mode & 0o777 == 0o600)
        let socket = serve.socket
        let refusal = await onThread { () -> String in
            guard let connection = try? UnixSocket.connect(path: socket) else { return "no connection" }
            // Magic "QXWR", frame version 1, type hello, flags 0, request id 0, payload 2 MiB.
            var header: [UInt8] = [0x51, 0x58, 0x57, 0x52, 1, 1, 0, 0]
            header += [UInt8](repeating: 0, count: 8) + [0x00, 0x20, 0x00, 0x00]
            let sent = header.withUnsafeBytes { Glibc.send(connection.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent == header.count else { return "send failed" }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            _ = setsockopt(connection.rawValue, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = chunk.withUnsafeMutableBytes { recv(connection.rawValue, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { break }
                received += chunk.prefix(count)
            }
            guard received.count >= 20, received[5] == 9 else { return "no goodbye: \(received.prefix(20))" }
            guard let goodbye = try? WireGoodbye(serializedBytes: Array(received[20...])) else { return "bad goodbye" }
            return "\(goodbye.reason.code): \(goodbye.reason.message)"
        }
        #expect(refusal.hasPrefix("protocol: ") && refusal.contains("2097172"), "\(refusal)")
        #expect(await serve.cli("vm", "list").status == 0)

        #expect(await serve.cli("vm", "delete", name).status == 0)
        #expect(Host.files(under: serve.runtimeRoot).isEmpty)
        #expect(try await serve.stop() == 0)
    }

    @Test("kill -9 of the daemon while a VM runs: a restarted daemon re-adopts it, can pause and stop it",
          .enabled(if: E2E.hasKVM, "needs /dev/kvm"), .enabled(if: E2E.isRoot, "needs root"), arguments: backends)
    func readoption(backend: ServeProcess.Backend) async throws {
        let serve = try ServeProcess(backend: backend)
        defer { serve.cleanUp() }
        try await serve.start()
        let name = E2E.unique("adopt")
        let run = await serve.cli("vm", "run", "--name", name, "--kernel", serve.kernel, "--cmdline", "console=ttyS0",
                                  "--memory", "64M", "--wait-for-console", E2E.marker, "--timeout", "20s")
        try #require(run.status == 0, "\(run)\n\(serve.log)")
        let pid = try #require(try await serve.info(name).pid)
        let identity = try ProcessIdentity.of(pid: pid)

        #expect(try await serve.stop(signal: SIGKILL) == SIGKILL)
        #expect(Host.isRunning(identity), "the VMM outlives the daemon")

        let ready = try await serve.start()
        #expect(ready.contains("adopted=1"), "\(ready)")
        let adopted = try await serve.info(name)
        #expect(adopted.state == "Running")
        #expect(adopted.pid == pid)
        #expect(await serve.cli("vm", "pause", name).status == 0)
        #expect(try await serve.info(name).state == "Paused")
        #expect(await serve.cli("vm", "stop", name).status == 0)
        #expect(try await serve.info(name).state == "Shutdown")
        #expect(!Host.isRunning(identity))
        #expect(await serve.cli("vm", "delete", name).status == 0)
        #expect(Host.cgroups(under: serve.cgroupParent).isEmpty)
        #expect(Host.files(under: serve.runtimeRoot).isEmpty, "\(Host.files(under: serve.runtimeRoot))")
        #expect(try await serve.stop() == 0)
    }

    @Test("a graceful daemon stop leaves the VM running; the next daemon re-adopts it",
          .enabled(if: E2E.isRoot, "needs root"))
    func gracefulRestart() async throws {
        let serve = try ServeProcess(backend: .cloudHypervisor)
        defer { serve.cleanUp() }
        try await serve.start()
        let name = E2E.unique("keep")
        #expect(await serve.cli("vm", "run", "--name", name, "--kernel", serve.kernel).status == 0)
        let identity = try ProcessIdentity.of(pid: try #require(try await serve.info(name).pid))
        #expect(try await serve.stop(signal: SIGTERM) == 0)
        #expect(Host.isRunning(identity))
        #expect(try await serve.start().contains("adopted=1"))
        #expect(await serve.cli("vm", "delete", name).status == 0)
        #expect(!Host.isRunning(identity))
        #expect(try await serve.stop() == 0)
    }

    @Test("QEMU refusing to start: the VM is Failed with QEMU's own reason, and nothing is left",
          .enabled(if: E2E.hasKVM, "needs /dev/kvm"), .enabled(if: E2E.canRunQEMU, "needs root and qemu-system-x86_64"))
    func qemuLaunchFailure() async throws {
        let serve = try ServeProcess(backend: .qemu)
        defer { serve.cleanUp() }
        try await serve.start()
        let bad = serve.imageRoot + "/not-a-kernel"
        try Data("not a kernel\n".utf8).write(to: URL(fileURLWithPath: bad))
        chmod(bad, 0o644)
        let name = E2E.unique("bad")
        #expect(await serve.cli("vm", "create", "--name", name, "--kernel", bad).status == 0)
        let start = await serve.cli("vm", "start", name)
        #expect(start.status == 1)
        #expect(start.stderr.contains("start ended with the vm Failed"), "\(start)")
        let failed = try await serve.info(name)
        #expect(failed.state == "Failed" && failed.pid == nil)
        // Whichever the node sees first: QMP closing (with QEMU's own words) or the exit status.
        let failure = failed.failure ?? ""
        #expect(failure.contains("QEMU said: qemu: invalid kernel header") || failure.contains("exited with status 1"), "\(failure)")
        #expect(Host.cgroups(under: serve.cgroupParent).isEmpty)
        #expect(await serve.cli("vm", "delete", name).status == 0)
        #expect(Host.files(under: serve.runtimeRoot).isEmpty, "\(Host.files(under: serve.runtimeRoot))")
        #expect(try await serve.stop() == 0)
    }

    @Test("QEMU gets disk images as descriptors the node opened: root-only images work, read-only stays read-only",
          .enabled(if: E2E.hasKVM, "needs /dev/kvm"), .enabled(if: E2E.canRunQEMU, "needs root and qemu-system-x86_64"))
    func qemuDisks() async throws {
        let serve = try ServeProcess(backend: .qemu)
        defer { serve.cleanUp() }
        try await serve.start()
        let writable = serve.diskRoot + "/rw.raw"
        let readOnly = serve.diskRoot + "/ro.raw"
        for path in [writable, readOnly] {
            #expect(FileManager.default.createFile(atPath: path, contents: Data(count: 1 << 20), attributes: [.posixPermissions: 0o600]))
        }
        let name = E2E.unique("disk")
        let run = await serve.cli("vm", "run", "--name", name, "--kernel", serve.kernel, "--cmdline", "console=ttyS0",
                                  "--memory", "64M", "--disk", writable, "--disk", readOnly + ",readonly",
                                  "--wait-for-console", E2E.marker, "--timeout", "20s")
        try #require(run.status == 0, "\(run)\n\(serve.log)")
        let pid = try #require(try await serve.info(name).pid)
        var modes: [String: Int] = [:]
        let directory = "/proc/\(pid)/fd"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + entry),
                  target == writable || target == readOnly,
                  let fdinfo = try? readProcFile("/proc/\(pid)/fdinfo/\(entry)"),
                  let line = fdinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags:") }),
                  let flags = Int(line.dropFirst("flags:".count).trimmingCharacters(in: .whitespaces), radix: 8) else { continue }
            modes[target] = flags & Int(O_ACCMODE)
        }
        #expect(modes[writable] == Int(O_RDWR), "\(modes)")
        #expect(modes[readOnly] == Int(O_RDONLY), "\(modes)")
        #expect(await serve.cli("vm", "delete", name).status == 0)
        #expect(Host.files(under: serve.runtimeRoot).isEmpty, "\(Host.files(under: serve.runtimeRoot))")
        #expect(try await serve.stop() == 0)
    }

    /// No capabilities, no_new_privs, seccomp filter mode, its own uid, its own cgroup.
    func checkConfinement(pid: Int32, cgroupParent: String, vmID: String) throws {
        let status = Host.status(of: pid)
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(status[set] == "0000000000000000", "\(set) = \(status[set] ?? "?")")
        }
        #expect(status["NoNewPrivs"] == "1")
        #expect(status["Seccomp"] == "2")
        let uids = status["Uid"]?.split(whereSeparator: { $0 == "\t" || $0 == " " }) ?? []
        #expect(uids.count == 4 && uids.allSatisfy { $0 == "65534" }, "Uid: \(status["Uid"] ?? "?")")
        let cgroups = Host.cgroupLines(of: pid)
        let own = cgroups.filter { $0.hasSuffix(":/\(cgroupParent)/\(vmID)") }
        #expect(!own.isEmpty, "\(cgroups)")
        for controller in ["memory", "pids"] where cgroups.contains(where: { $0.contains(":\(controller):") }) {
            #expect(own.contains { $0.contains(":\(controller):") }, "\(controller) in \(cgroups)")
        }
    }
}
