import Glibc
import Testing
@testable import LinuxSys

/// The built-in outer filter against a real VMM, in kill mode so any syscall the policy lacks ends
/// QEMU with SIGSYS.
@Suite(.enabled(if: SpawnFixture.isRoot && access("/usr/bin/qemu-system-x86_64", X_OK) == 0 && access("/dev/kvm", R_OK | W_OK) == 0,
                "needs root, QEMU and /dev/kvm"))
struct SpawnVMMPolicyTests {
    static let qemu = "/usr/bin/qemu-system-x86_64"
    static let killingVMMPolicy = SeccompPolicy(defaultAction: .kill, rules: SeccompPolicy.vmmDefault.rules)

    /// QEMU microvm up to the point where KVM, the vCPU threads and the monitor run (`-S`), then
    /// asked to quit over QMP.
    @Test func qemuMicrovmRunsUnderTheOuterFilter() async throws {
        var plan = SpawnPlan(executable: Self.qemu, arguments: [
            "qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-smp", "2",
            "-m", "64", "-nodefaults", "-no-user-config", "-display", "none", "-S", "-qmp", "stdio",
        ])
        // Root without capabilities: /dev/kvm (root 0600) opens by ownership, nothing else is granted.
        plan.user = nil
        plan.seccomp = Self.killingVMMPolicy
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

    /// The whole launcher at once: QEMU jailed (only its binary, libraries, firmware, the guest and
    /// /dev/kvm bind-mounted), in its own PID namespace, without capabilities, under the outer
    /// filter, boots a tiny PVH guest that prints "Q" on COM1 and leaves through isa-debug-exit.
    @Test func jailedQemuBootsATinyGuest() async throws {
        let root = "/tmp/\(SpawnFixture.unique("qx-qemu-jail"))"
        try #require(mkdir(root, 0o755) == 0)
        defer { SpawnFixture.removeTree(root) }
        let guest = root + ".guest.elf"
        try TinyPVHGuest.write(to: guest)
        defer { unlink(guest) }

        var plan = SpawnPlan(executable: Self.qemu, arguments: [
            "qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-cpu", "host,-arch-capabilities",
            "-m", "64", "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", "/guest.elf",
        ])
        plan.user = nil
        plan.seccomp = Self.killingVMMPolicy
        plan.jail = JailPlan(root: root, mounts: [
            BindMount(Self.qemu), BindMount("/lib"), BindMount("/lib64"), BindMount("/usr/lib"),
            BindMount("/usr/share/qemu"), BindMount(source: guest, target: "/guest.elf"),
        ], devices: ["/dev/kvm"], mountProc: true)
        plan.newPIDNamespace = true
        var stdout = try Pipe()
        var stderr = try Pipe()
        plan.fileDescriptors = [1: stdout.write, 2: stderr.write]
        let process = try await Launcher.launch(plan)
        stdout.closeWrite()
        stderr.closeWrite()
        let errors = await SpawnFixture.readToEnd(stderr.read)
        let serial = await SpawnFixture.readToEnd(stdout.read)
        let exit = try await SpawnFixture.exit(of: process)
        // isa-debug-exit turns the byte 0x34 into exit status (0x34 << 1) | 1.
        #expect(exit == .exited(0x69), "stderr: \(errors)")
        #expect(serial.contains("Q"), "\(serial)")
    }
}

/// A 32-bit ELF that is a complete PVH guest: a Xen `PHYS32_ENTRY` note pointing at code that
/// writes "Q\n" to COM1, then 0x34 to port 0xf4 (QEMU's isa-debug-exit), then halts.
enum TinyPVHGuest {
    static let loadAddress: UInt32 = 0x10_0000

    static let code: [UInt8] = [
        0x66, 0xBA, 0xF8, 0x03,  // mov dx, 0x3f8
        0xB0, 0x51, 0xEE,        // mov al, 'Q'; out dx, al
        0xB0, 0x0A, 0xEE,        // mov al, '\n'; out dx, al
        0x66, 0xBA, 0xF4, 0x00,  // mov dx, 0xf4
        0xB0, 0x34, 0xEE,        // mov al, 0x34; out dx, al
        0xF4, 0xEB, 0xFD,        // hlt; jmp hlt
    ]

    static var bytes: [UInt8] {
        var elf: [UInt8] = []
        func u16(_ v: UInt16) { elf += [UInt8(v & 0xff), UInt8(v >> 8)] }
        func u32(_ v: UInt32) { for shift in stride(from: 0, to: 32, by: 8) { elf.append(UInt8((v >> UInt32(shift)) & 0xff)) } }
        let noteOffset: UInt32 = 0xC0
        let codeOffset: UInt32 = 0x100
        // ELF header: 32-bit, little-endian, executable, i386, two program headers right after it.
        elf += [0x7F, 0x45, 0x4C, 0x46, 1, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        u16(2); u16(3); u32(1); u32(loadAddress); u32(52); u32(0); u32(0)
        u16(52); u16(32); u16(2); u16(0); u16(0); u16(0)
        // PT_LOAD: the code at its physical load address, read + execute.
        u32(1); u32(codeOffset); u32(loadAddress); u32(loadAddress); u32(UInt32(code.count)); u32(UInt32(code.count)); u32(5); u32(0x10)
        // PT_NOTE: the Xen note.
        u32(4); u32(noteOffset); u32(0); u32(0); u32(20); u32(20); u32(4); u32(4)
        elf += [UInt8](repeating: 0, count: Int(noteOffset) - elf.count)
        // namesz 4, descsz 4, type 18 (XEN_ELFNOTE_PHYS32_ENTRY), "Xen\0", entry address.
        u32(4); u32(4); u32(18); elf += Array("Xen\u{0}".utf8); u32(loadAddress)
        elf += [UInt8](repeating: 0, count: Int(codeOffset) - elf.count)
        return elf + code
    }

    static func write(to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw SystemError("open \(path)", errno: errno) }
        defer { close(fd) }
        let image = bytes
        let written = image.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if written != image.count { throw SystemError("write \(path)", errno: errno) }
    }
}
