import Foundation
import Glibc
import NodeCore
import Testing

/// Whole lives of a VM through the machine, as the VM actor would drive it.
@Suite("VM state machine: scenarios")
struct VMStateMachineScenarioTests {
    typealias M = VMStateMachine

    /// Feeds inputs in order and returns every action, checking none was refused.
    private func drive(_ machine: inout M, _ steps: [Step]) throws -> [M.Action] {
        var all: [M.Action] = []
        for step in steps {
            switch step {
            case .command(let command): all += try machine.handle(command)
            case .observe(let observation): all += machine.handle(observation)
            }
        }
        return all
    }

    enum Step {
        case command(M.Command)
        case observe(M.Observation)
    }

    @Test("start: launch, vm.create, vm.boot, running — in that order")
    func bootFlow() throws {
        var machine = M(vmName: "web1")
        #expect(try machine.handle(.start) == [.stateChanged(from: .created, to: .booting), .launchVMM])
        #expect(machine.handle(.launched) == [.callVMM(.create)])
        #expect(machine.handle(.callEnded(.create, .success)) == [.callVMM(.boot)])
        #expect(machine.handle(.event(.vmBooting)) == [])
        #expect(machine.handle(.event(.vmBooted)) == [])
        #expect(machine.handle(.callEnded(.boot, .success)) == [.stateChanged(from: .booting, to: .running)])
        #expect(machine.state == .running)
    }

    @Test("a guest power-off (events, then a clean exit) is a Shutdown, and the VM can boot again")
    func guestPowerOff() throws {
        var machine = M(vmName: "web1", state: .running)
        let actions = try drive(&machine, [
            .observe(.event(.vmShutdown)), .observe(.event(.vmDeleted)), .observe(.event(.vmmShutdown)),
            .observe(.processExited(.clean)),
        ])
        #expect(actions == [
            .stateChanged(from: .running, to: .shuttingDown),
            .stateChanged(from: .shuttingDown, to: .shutdown),
            .releaseHostResources,
        ])
        #expect(try machine.handle(.start) == [.stateChanged(from: .shutdown, to: .booting), .launchVMM])
    }

    @Test("a tiny guest powering off before vm.boot answers still ends in Shutdown")
    func powerOffRacingBoot() throws {
        var machine = M(vmName: "web1", state: .booting)
        _ = machine.handle(.event(.vmShutdown))
        #expect(machine.handle(.callEnded(.boot, .success)) == [])
        _ = machine.handle(.processExited(.clean))
        #expect(machine.state == .shutdown)
    }

    @Test("a clean exit without a shutdown event or a stop is a failure (vCPU errors exit 0)")
    func cleanExitWithoutEvent() {
        var machine = M(vmName: "web1", state: .running)
        _ = machine.handle(.processExited(.clean))
        #expect(machine.state == .failed(.vmmExited(.clean)))
    }

    @Test("a vCPU failure after the shutdown events is still a failure")
    func vcpuFailureAfterEvents() {
        var machine = M(vmName: "web1", state: .running)
        _ = machine.handle(.event(.vmShutdown))
        _ = machine.handle(.event(.vmmShutdown))
        let exit = M.ProcessExit.vcpuFailure("VCPU generated error: InternalError")
        #expect(machine.handle(.processExited(exit)) == [
            .stateChanged(from: .shuttingDown, to: .failed(.vmmExited(exit))), .releaseHostResources,
        ])
    }

    @Test("a VMM crash mid-boot: Failed, everything released, the late boot error only reported")
    func crashMidBoot() throws {
        var machine = M(vmName: "web1")
        _ = try machine.handle(.start)
        _ = machine.handle(.launched)
        _ = machine.handle(.callEnded(.create, .success))
        #expect(machine.handle(.processExited(.crashed(signal: SIGSEGV))) == [
            .stateChanged(from: .booting, to: .failed(.vmmExited(.crashed(signal: SIGSEGV)))), .releaseHostResources,
        ])
        let gone = M.CallError(.vmmGone, chain: ["connection reset"])
        #expect(machine.handle(.callEnded(.boot, .failure(gone))) == [.reportFailure(.boot, gone)])
        #expect(machine.state.failure == .vmmExited(.crashed(signal: SIGSEGV)))
    }

    @Test("a hung vm.boot: Failing, teardown by signals, then Failed with the call as reason")
    func hungBoot() {
        var machine = M(vmName: "web1", state: .booting)
        let timeout = M.CallError(.noAnswer, chain: ["vm.boot: no answer within 10 s"])
        #expect(machine.handle(.callEnded(.boot, .failure(timeout))) == [
            .stateChanged(from: .booting, to: .failing(.callFailed(.boot, timeout))),
            .reportFailure(.boot, timeout), .startTeardown(.signals),
        ])
        _ = machine.handle(.processExited(.killedByNode))
        #expect(machine.state == .failed(.callFailed(.boot, timeout)))
        #expect(machine.state.description == "Failed")
        #expect(machine.state.failure?.description == "vm.boot failed: no answer: vm.boot: no answer within 10 s")
    }

    @Test("a refused vm.boot keeps the VMM's error chain as the failure")
    func refusedBoot() {
        var machine = M(vmName: "web1", state: .booting)
        let refused = M.CallError(.rejected(status: 500),
                                  chain: ["Error from API", "The VM could not boot", "VM config is missing"])
        _ = machine.handle(.callEnded(.boot, .failure(refused)))
        #expect(machine.state == .failing(.callFailed(.boot, refused)))
        #expect(machine.state.failure?.description
            == "vm.boot failed: HTTP 500: Error from API: The VM could not boot: VM config is missing")
    }

    @Test("stop: teardown ladder, then Shutdown when the process is gone; stop again is a no-op")
    func stop() throws {
        var machine = M(vmName: "web1", state: .running)
        #expect(try machine.handle(.stop) == [.stateChanged(from: .running, to: .shuttingDown), .startTeardown(.graceful)])
        #expect(machine.handle(.processExited(.killedByNode)) == [
            .stateChanged(from: .shuttingDown, to: .shutdown), .releaseHostResources,
        ])
        #expect(try machine.handle(.stop) == [])
    }

    @Test("stop during launch: the VMM launched late is torn down, and the VM ends Shutdown")
    func stopDuringLaunch() throws {
        var machine = M(vmName: "web1")
        _ = try machine.handle(.start)
        _ = try machine.handle(.stop)
        #expect(machine.handle(.launched) == [.startTeardown(.graceful)])
        _ = machine.handle(.processExited(.killedByNode))
        #expect(machine.state == .shutdown)
    }

    @Test("delete while running: teardown, release, remove; deleting again is a no-op")
    func deleteRunning() throws {
        var machine = M(vmName: "web1", state: .running)
        _ = try machine.handle(.delete)
        #expect(machine.handle(.processExited(.killedByNode)) == [
            .stateChanged(from: .deleting, to: .deleted), .releaseHostResources, .removeRuntimeDirectory,
        ])
        #expect(try machine.handle(.delete) == [])
    }

    @Test("a refused pause leaves the VM running and reports the VMM's chain")
    func refusedPause() throws {
        var machine = M(vmName: "web1", state: .running)
        _ = try machine.handle(.pause)
        let refused = M.CallError(.rejected(status: 500), chain: ["Error from API", "Invalid state transition"])
        #expect(machine.handle(.callEnded(.pause, .failure(refused))) == [
            .stateChanged(from: .pausing, to: .running), .reportFailure(.pause, refused),
        ])
    }

    @Test("guest panic: Failing, then Failed with the panic as reason")
    func guestPanic() {
        var machine = M(vmName: "web1", state: .running)
        #expect(machine.handle(.event(.guestPanic)) == [
            .stateChanged(from: .running, to: .failing(.guestPanicked)), .startTeardown(.signals),
        ])
        _ = machine.handle(.processExited(.killedByNode))
        #expect(machine.state == .failed(.guestPanicked))
    }

    @Test("illegal and busy commands: the message names the vm, the command and the state")
    func messages() {
        var machine = M(vmName: "web1", state: .shutdown)
        #expect(throws: M.IllegalTransition.self) { try machine.handle(.pause) }
        do {
            _ = try machine.handle(.pause)
        } catch {
            #expect(error.description == "cannot pause vm 'web1': it is Shutdown")
            #expect(!error.busy)
        }
        machine = M(vmName: "web1", state: .booting)
        do {
            _ = try machine.handle(.powerButton)
        } catch {
            #expect(error.busy)
            #expect(error.description
                == "cannot press the power button of vm 'web1': it is Booting (an operation is in flight; retry when it settles, or stop the vm)")
        }
    }

    @Test("the machine survives a JSON round trip (durable state)", arguments: [
        M.State.created, .running, .failing(.guestPanicked),
        .failed(.callFailed(.boot, M.CallError(.rejected(status: 500), chain: ["Error from API", "boom"]))),
        .failed(.vmmExited(.crashed(signal: 11))), .failed(.launchFailed("memory: 28 missing")),
    ])
    func codable(_ state: M.State) throws {
        let machine = M(vmName: "web1", state: state)
        let decoded = try JSONDecoder().decode(M.self, from: JSONEncoder().encode(machine))
        #expect(decoded == machine)
    }

    @Test("events are read from the stream's source and event names")
    func eventNames() {
        #expect(M.Event(source: "vm", event: "shutdown") == .vmShutdown)
        #expect(M.Event(source: "guest", event: "panic") == .guestPanic)
        #expect(M.Event(source: "vm", event: "resizing") == nil)
    }

    struct ExitCase: Sendable, CustomTestStringConvertible {
        let status: Int32?, signal: Int32?, dumped: Bool, byNode: Bool, oom: Bool, log: String
        let expected: VMStateMachine.ProcessExit
        var testDescription: String { "\(expected)" }
    }

    @Test("wait statuses are classified, with the VMM log deciding a status 0", arguments: [
        ExitCase(status: 0, signal: nil, dumped: false, byNode: false, oom: false,
                 log: "cloud-hypervisor: 5.1ms: <vcpu0> INFO: ACPI Shutdown signalled\n", expected: .clean),
        ExitCase(status: 0, signal: nil, dumped: false, byNode: false, oom: false,
                 log: "x\ncloud-hypervisor: 9ms: <vcpu0> ERROR:vmm/src/cpu.rs:1460 -- VCPU generated error: VcpuRun\ny",
                 expected: .vcpuFailure("cloud-hypervisor: 9ms: <vcpu0> ERROR:vmm/src/cpu.rs:1460 -- VCPU generated error: VcpuRun")),
        ExitCase(status: 1, signal: nil, dumped: false, byNode: false, oom: false, log: "", expected: .exitStatus(1)),
        ExitCase(status: nil, signal: SIGSEGV, dumped: true, byNode: false, oom: false, log: "", expected: .crashed(signal: SIGSEGV)),
        ExitCase(status: nil, signal: SIGTERM, dumped: false, byNode: false, oom: false, log: "", expected: .signaled(SIGTERM)),
        ExitCase(status: nil, signal: SIGKILL, dumped: false, byNode: false, oom: true, log: "", expected: .oomKilled),
        ExitCase(status: nil, signal: SIGSYS, dumped: true, byNode: false, oom: false, log: "", expected: .seccompKilled),
        ExitCase(status: nil, signal: SIGKILL, dumped: false, byNode: true, oom: false, log: "", expected: .killedByNode),
    ])
    func classify(_ c: ExitCase) {
        #expect(M.ProcessExit.classify(status: c.status, signal: c.signal, coreDumped: c.dumped,
                                       signalledByNode: c.byNode, oomKilled: c.oom, vmmLog: c.log) == c.expected)
    }
}
