import Glibc
import Testing
@testable import LinuxSys

/// The built-in outer filter against a real VMM: QEMU microvm brought up to the point where KVM,
/// the vCPU threads and the monitor run (`-S`), then asked to quit over QMP — in kill mode, so any
/// syscall the policy lacks ends QEMU with SIGSYS.
@Suite(.enabled(if: SpawnFixture.isRoot && access("/usr/bin/qemu-system-x86_64", X_OK) == 0 && access("/dev/kvm", R_OK | W_OK) == 0,
                "needs root, QEMU and /dev/kvm"))
struct SpawnVMMPolicyTests {
    @Test func qemuMicrovmRunsUnderTheOuterFilter() async throws {
        var plan = SpawnPlan(executable: "/usr/bin/qemu-system-x86_64", arguments: [
            "qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-smp", "2",
            "-m", "64", "-nodefaults", "-no-user-config", "-display", "none", "-S", "-qmp", "stdio",
        ])
        // Root without capabilities: /dev/kvm (root 0600) opens by ownership, nothing else is granted.
        plan.user = nil
        plan.seccomp = SeccompPolicy(defaultAction: .kill, rules: SeccompPolicy.vmmDefault.rules)
        var stdin = try Pipe()
        var stdout = try Pipe()
        var stderr = try Pipe()
        plan.fileDescriptors = [0: stdin.read, 1: stdout.write, 2: stderr.write]
        let process = try await Launcher.launch(plan)
        stdin.closeRead()
        stdout.closeWrite()
        stderr.closeWrite()
        let commands = #"{"execute":"qmp_capabilities"}"# + "\n" + #"{"execute":"quit"}"# + "\n"
        let written = commands.utf8CString.withUnsafeBufferPointer { write(stdin.write, $0.baseAddress, $0.count - 1) }
        #expect(written == commands.utf8.count)
        stdin.closeWrite()
        let errors = await SpawnFixture.readToEnd(stderr.read)
        let replies = await SpawnFixture.readToEnd(stdout.read)
        let exit = try await SpawnFixture.exit(of: process)
        #expect(exit == .exited(0), "stderr: \(errors)")
        #expect(replies.contains(#""QMP""#), "\(replies)")
        #expect(errors.isEmpty, "\(errors)")
    }
}
