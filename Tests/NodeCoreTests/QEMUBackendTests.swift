import Foundation
import LinuxSys
@testable import NodeCore
import Testing
import VMModel

@Suite("QEMU backend: events, errors, validation, launch plan")
struct QEMUBackendTests {
    static let backend: QEMUBackend? = try? QEMUBackend(binary: "/usr/bin/qemu-system-x86_64")

    @Test("QMP events map to the state machine's events", arguments: [
        (QMPEvent.Kind.stop, VMStateMachine.Event?.some(.vmPaused)),
        (.resume, .vmResumed),
        (.shutdown(guest: true, reason: .guestShutdown), .vmShutdown),
        (.shutdown(guest: false, reason: .hostQMPQuit), .vmmShutdown),
        (.shutdown(guest: false, reason: .hostSignal), .vmmShutdown),
        (.shutdown(guest: true, reason: .guestPanic), .guestPanic),
        (.reset(guest: false, reason: .hostQMPSystemReset), .vmRebooted),
        (.guestPanicked(action: "pause"), .guestPanic),
        (.powerdown, nil),
        (.deviceDeleted(device: "net1", path: "/machine/peripheral/net1"), nil),
        (.other("BLOCK_JOB_COMPLETED"), nil),
    ])
    func eventMapping(event: QMPEvent.Kind, expected: VMStateMachine.Event?) {
        #expect(QEMUBackend.stateEvent(for: event) == expected)
    }

    @Test("QMP failures map to call errors: refused → rejected, closed → vmmGone, broken → noAnswer", arguments: [
        (QMPError.command(command: "cont", errorClass: "GenericError", description: "nope"), VMStateMachine.CallError.Kind.rejected(status: 500)),
        (.disconnected, .vmmGone),
        (.cancelled, .noAnswer),
        (.malformed("x"), .noAnswer),
        (.lineTooLong(limit: 10), .noAnswer),
        (.system(SystemError("recv", errno: ECONNRESET)), .noAnswer),
    ])
    func errorMapping(error: QMPError, kind: VMStateMachine.CallError.Kind) {
        let mapped = QEMUBackend.callError(error)
        #expect(mapped.kind == kind)
        if case .command = error { #expect(mapped.chain == ["QMP cont", "GenericError: nope"]) }
    }

    @Test("the binary must be an absolute path")
    func relativeBinary() {
        #expect(throws: VMMBackendError.self) { try QEMUBackend(binary: "qemu-system-x86_64") }
    }

    @Test("consoles the jailed VMM cannot reach are validation errors naming the field and the backend")
    func consoleValidation() throws {
        let backend = try #require(Self.backend)
        var spec = VMSpec(name: "c", cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(64)),
                          payload: PayloadSpec(kernel: "/k"), serial: ConsoleSpec(mode: .pty))
        let problems = backend.validate(spec)
        #expect(problems.map(\.field) == ["serial.mode"])
        #expect(problems.first?.reason.contains("qemu backend") == true)
        spec.serial = ConsoleSpec(mode: .tty)
        #expect(backend.validate(spec).isEmpty)
    }

    @Test("the jail holds QEMU, its libraries, the payload, a private /dev/kvm and the RNG — no disk (passed as fds)")
    func jailPlan() throws {
        let backend = try QEMUBackend(binary: "/usr/bin/qemu-system-x86_64", runtimeMounts: ["/usr/lib"])
        let spec = VMSpec(name: "j", cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(64)),
                          payload: PayloadSpec(kernel: "/etc/hostname"),
                          disks: [DiskSpec(id: "d0", path: "/etc/hosts", readonly: true), DiskSpec(id: "d1", path: "/etc/passwd")])
        let jail = backend.jail(for: spec, channels: QEMUBackend.Channels(directory: "/run/qarax/vms/j/boot"))
        #expect(jail.root == "/run/qarax/vms/j/boot/jail")
        #expect(jail.mountProc)
        #expect(jail.devices == ["/dev/urandom"])
        #expect(jail.mounts.contains(BindMount("/usr/bin/qemu-system-x86_64")))
        #expect(jail.mounts.contains(BindMount("/usr/lib")))
        #expect(jail.mounts.contains(BindMount("/etc/hostname")))
        #expect(!jail.mounts.contains { $0.source == "/etc/hosts" || $0.source == "/etc/passwd" })
        #expect(jail.mounts.contains(BindMount(source: "/run/qarax/vms/j/boot/kvm", target: "/dev/kvm", readOnly: false, device: true)))
    }
}

@Suite("QEMU control helpers: deadline and shutdown latch")
struct QEMUControlHelperTests {
    @Test("a body that finishes in time gives its result")
    func inTime() async {
        let result = await QEMUControl.withDeadline(.seconds(30)) { () async -> Result<Int, QMPError> in .success(7) }
        #expect(result == .success(7))
    }

    @Test("a body that outlives the deadline is cancelled and gives nil")
    func late() async {
        let latch = ShutdownLatch()
        let result = await QEMUControl.withDeadline(.milliseconds(20)) { () async -> Result<Int, QMPError> in
            await latch.wait()
            return .success(1)
        }
        #expect(result == nil)
    }

    @Test("waiters resume when the latch opens, and later waiters at once")
    func latch() async {
        let latch = ShutdownLatch()
        async let waiting: Void = latch.wait()
        latch.open()
        await waiting
        await latch.wait()
    }
}
