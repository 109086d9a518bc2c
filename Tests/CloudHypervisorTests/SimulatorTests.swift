import CHSimulator
import Foundation
import LinuxSys
import NodeCore
import Testing

@Suite("ch-sim command line and wire format")
struct SimulatorTests {
    @Test func parsesCloudHypervisorsFlags() throws {
        let options = try SimulatorOptions.parse(
            ["--api-socket", "fd=3", "--event-monitor=path=/run/ev", "--seccomp", "true", "--log-file", "/tmp/l",
             "-vv", "--cpus", "boot=1", "--landlock", "--sim-fault", "crash-at=vm.boot,slow=50ms"],
            environment: ["QARAX_CH_SIM_FAULTS": "http500-at=vm.pause"])
        #expect(options.apiSocket == .fd(3))
        #expect(options.eventMonitor == .path("/run/ev"))
        #expect(options.logFile == "/tmp/l")
        #expect(options.verbosity == 2)
        #expect(options.faults.crashAt == ["vm.boot"])
        #expect(options.faults.http500At == ["vm.pause"])
        #expect(options.faults.slow == .milliseconds(50))
        #expect(options.ignored == ["--cpus boot=1", "--landlock"])
    }

    @Test(arguments: [
        ["--api-socket", "fd=x"], ["--api-socket", "sock=/x"], ["--api-socket"], ["--seccomp", "maybe"],
        ["--sim-fault", "explode-at=vm.boot"], ["--sim-fault", "crash-at"], ["--sim-fault", "slow=fast"], ["--bogus"],
    ])
    func rejectsBadCommandLines(arguments: [String]) {
        #expect(throws: SimOptionsError.self) { _ = try SimulatorOptions.parse(arguments) }
    }

    @Test func helpSaysItIsATestDouble() {
        #expect(SimulatorOptions.helpText.contains("TEST DOUBLE"))
    }

    @Test func answersLikeTheRealVMMOnTheWire() async throws {
        let sim = try SimulatorProcess()
        defer { sim.terminate() }
        // A hand-written body-less PUT with Content-Length: 0, read back raw.
        let answer = try await onThread {
            let socket = try UnixSocket.connect(path: sim.socketPath)
            try UnixSocket.send(socket, Array("PUT /api/v1/vm.boot HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".utf8))
            var answer: [UInt8] = []
            while !String(decoding: answer, as: UTF8.self).contains("]") {
                let chunk = try UnixSocket.receive(socket)
                if chunk.bytes.isEmpty { break }
                answer += chunk.bytes
            }
            return String(decoding: answer, as: UTF8.self)
        }
        #expect(answer.hasPrefix("HTTP/1.1 500 \r\n"))
        #expect(answer.hasSuffix(#"["Error from API","The VM could not boot","VM config is missing"]"#))
    }

    @Test func defaultValidatorChecksRequiredFieldsAndTypes() {
        #expect(DefaultBodyValidator.validate(path: "/vm.create", body: Array(#"{}"#.utf8)).isEmpty)
        #expect(DefaultBodyValidator.validate(path: "/vm.create", body: Array(#"{"payload":{"cmdline":"a,}"}}"#.utf8)).isEmpty)
        #expect(DefaultBodyValidator.validate(path: "/vm.create", body: Array(#"{"net":[{"id":"a"},]}"#.utf8)) == ["trailing comma at byte 18"])
        #expect(DefaultBodyValidator.validate(path: "/vm.create", body: Array(#"{"iommu":true ,  }"#.utf8)) == ["trailing comma at byte 14"])
        #expect(DefaultBodyValidator.validate(path: "/vm.create", body: Array(#"{"cpus":{"max_vcpus":1}}"#.utf8))
            == ["missing field `boot_vcpus` in cpus"])
        #expect(DefaultBodyValidator.validate(path: "/vm.remove-device", body: Array(#"{}"#.utf8)) == ["missing field `id`"])
        #expect(DefaultBodyValidator.validate(path: "/vm.resize", body: Array(#"{"desired_vcpus":300}"#.utf8)).count == 1)
        #expect(DefaultBodyValidator.validate(path: "/vm.add-net", body: Array(#"{"mtu":"big","fds":[1,"x"]}"#.utf8)).count == 2)
        #expect(DefaultBodyValidator.validate(path: "/vm.add-disk", body: Array("[]".utf8)) == ["invalid type: sequence at body, expected a map"])
    }

    @Test func theValidatorHookDecidesWhatIs400() {
        // A stricter hook (as the OpenAPI validator will be) rejects what the default accepts.
        let strict: BodyValidator = { path, body in
            path == "/vm.create" && !String(decoding: body, as: UTF8.self).contains("payload") ? ["missing field `payload`"] : []
        }
        var lenient = APIRouter(vmm: SimulatedVMM(pid: 1))
        var picky = APIRouter(vmm: SimulatedVMM(pid: 1), validator: strict)
        let body = Array(#"{"cpus":{"boot_vcpus":1,"max_vcpus":1}}"#.utf8)
        #expect(lenient.route(isGet: false, call: "vm.create", body: body, descriptors: []).status == 204)
        let rejected = picky.route(isGet: false, call: "vm.create", body: body, descriptors: [])
        #expect(rejected.status == 400)
        #expect(String(decoding: rejected.body, as: UTF8.self) == #"["Failed to deserialize JSON","missing field `payload`"]"#)
        #expect(picky.vmm.config == nil)
    }

    @Test func wrongMethodAndUnknownCalls() {
        var router = APIRouter(vmm: SimulatedVMM(pid: 1))
        #expect(router.route(isGet: true, call: "vm.boot", body: [], descriptors: []).status == 405)
        #expect(router.route(isGet: false, call: "vm.teleport", body: [], descriptors: []).status == 404)
        #expect(router.route(isGet: true, call: "vmm.ping", body: [], descriptors: []).status == 200)
    }
}
