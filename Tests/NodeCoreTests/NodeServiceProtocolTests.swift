import Foundation
@testable import NodeCore
import Testing
import VMModel
import Wire

@Suite("node service: Wire mapping of the local socket, CLI flags, output")
struct NodeServiceProtocolTests {
    static let spec = VMSpec(name: "web1", cpus: CPUSpec(bootVCPUs: 2), memory: MemorySpec(size: .mebibytes(256)),
                             payload: PayloadSpec(kernel: "/images/vmlinux", cmdline: "console=ttyS0"))

    @Test("requests round-trip through Wire requests, encoded and decoded", arguments: [
        NodeRequest.create(spec: spec), .start(name: "web1"), .stop(name: "web1"), .pause(name: "a"), .resume(name: "a"),
        .reboot(name: "a"), .powerButton(name: "a"), .delete(name: "a"), .info(name: "a"), .list,
        .console(name: "a", offset: 42, follow: true), .console(name: "a", offset: 0, follow: false),
    ])
    func requestRoundTrip(request: NodeRequest) throws {
        let bytes: [UInt8] = try NodeClient.wireRequest(request).serializedBytes()
        #expect(try NodeWireMapping.request(WireRequest(serializedBytes: bytes)) == request)
    }

    @Test("responses round-trip through Wire, every VM report field and console bytes included")
    func responseRoundTrip() throws {
        let report = VMReport(id: "w", name: "w", backend: "qemu", state: "Failing", failure: "the VMM died", pid: 42,
                              vmmState: "running", vcpus: 3, memoryBytes: 1 << 26, nics: 1, disks: 2,
                              runtimeDirectory: "/r", serialLog: "/r/serial.log")
        for response in [NodeResponse.ok, .vm(report), .vms([report, report]),
                         .console(offset: 3, next: 6, bytes: Data([0, 0xff, 0x0a]))] {
            let bytes: [UInt8] = try NodeWireMapping.response(response).serializedBytes()
            #expect(NodeWireMapping.nodeResponse(try WireResponse(serializedBytes: bytes)) == response)
        }
        var bare = report
        (bare.failure, bare.pid, bare.vmmState) = (nil, nil, nil)
        let bytes: [UInt8] = try NodeWireMapping.response(.vm(bare)).serializedBytes()
        #expect(NodeWireMapping.nodeResponse(try WireResponse(serializedBytes: bytes)) == .vm(bare))
    }

    @Test("service errors cross Wire with their code and every field problem")
    func errorRoundTrip() throws {
        let errors = [
            NodeServiceError(code: .invalidSpec, message: "invalid vm specification",
                             problems: [FieldProblem(field: "nics[1].mtu", reason: "70000 is above 65535"),
                                        FieldProblem(field: "memory.size", reason: "not a multiple of 2 MiB")]),
            NodeServiceError(code: .notFound, message: "no vm named 'x'"),
            NodeServiceError(code: .alreadyExists, message: "a vm named 'x' exists"),
        ]
        for error in errors {
            let bytes: [UInt8] = try WireErrorMapping.response(for: error).serializedBytes()
            #expect(NodeServiceError(try WireErrorResponse(serializedBytes: bytes)) == error)
        }
    }

    @Test("node errors map to service errors with stable codes and field paths")
    func errorMapping() {
        let invalid = NodeServiceError(NodeError.invalidSpec([SpecProblem(field: "memory.size", reason: "not a multiple of 2 MiB")]))
        #expect(invalid.code == .invalidSpec)
        #expect(invalid.problems == [FieldProblem(field: "memory.size", reason: "not a multiple of 2 MiB")])
        #expect(NodeOutput.error(invalid) == "error: invalid vm specification:\n  memory.size: not a multiple of 2 MiB")
        #expect(NodeServiceError(NodeError.notFound(name: "x")).code == .notFound)
        #expect(NodeServiceError(NodeError.alreadyExists(name: "x")).code == .alreadyExists)
        let illegal = VMStateMachine.IllegalTransition(vmName: "x", command: .pause, state: .created, busy: false)
        #expect(NodeServiceError(NodeError.operation(.illegal(illegal))).code == .illegalTransition)
    }

    @Test("vm create flags build the specification")
    func flags() throws {
        var flags = VMSpecFlags(name: "web1")
        flags.vcpus = 2
        flags.memory = "512M"
        flags.kernel = "/images/vmlinux"
        flags.nets = ["tap,mtu=9000,mac=52:54:00:12:34:56,bridge=br0", "macvtap,parent=eth1"]
        flags.disks = ["/disks/a.raw,readonly", "/disks/b.raw"]
        flags.hugepages = "2M"
        let spec = try flags.spec()
        #expect(spec.cpus.bootVCPUs == 2)
        #expect(spec.memory.size == .mebibytes(512))
        #expect(spec.memory.hugepages && spec.memory.hugepageSize == .mebibytes(2))
        #expect(spec.serial.mode == .tty)
        #expect(spec.nics.map(\.id) == ["net0", "net1"])
        #expect(spec.nics[0].mtu == 9000 && spec.nics[0].bridge == "br0" && spec.nics[0].mac == "52:54:00:12:34:56")
        #expect(spec.nics[1].kind == .macvtap && spec.nics[1].parent == "eth1" && spec.nics[1].mode == .bridge)
        #expect(spec.disks.map(\.readonly) == [true, false])
    }

    @Test("a bad flag value names the flag, the value and the reason", arguments: [
        ("--net", "bridge,mtu=9000", "not a NIC kind"),
        ("--net", "tap,parent=eth0", "parent is not an option of a tap NIC"),
        ("--net", "macvtap", "needs parent=IF"),
        ("--net", "macvtap,parent=eth0,mode=wild", "mode=wild is not a macvtap mode"),
        ("--net", "tap,mtu=big", "mtu=big is not a number"),
        ("--net", "tap,,mtu=1", "empty option"),
        ("--disk", "/d.raw,fast", "fast is not a disk option"),
        ("--memory", "256MB", "--memory"),
        ("--hugepages", "huge", "page size"),
    ])
    func badFlags(flag: String, value: String, reason: String) {
        var flags = VMSpecFlags(name: "x")
        switch flag {
        case "--net": flags.nets = [value]
        case "--disk": flags.disks = [value]
        case "--memory": flags.memory = value
        default: flags.hugepages = value
        }
        do {
            _ = try flags.spec()
            Issue.record("\(flag) \(value) accepted")
        } catch {
            #expect(error.flag == flag && error.value == value)
            #expect(error.description.contains(reason), "\(error)")
        }
    }

    @Test("durations", arguments: [("30s", Duration.seconds(30)), ("500ms", .milliseconds(500)), ("2m", .seconds(120)),
                                   ("1.5s", .milliseconds(1500)), ("0s", .zero), ("7", .seconds(7))])
    func durations(text: String, expected: Duration) throws {
        #expect(try NodeOutput.duration(text, flag: "--timeout") == expected)
    }

    @Test("a bad duration names the flag", arguments: ["", "s", "-1s", "ten", "5 s"])
    func badDurations(text: String) {
        #expect(throws: FlagError(flag: "--timeout", value: text, reason: "is not a duration (e.g. 30s, 500ms, 2m)")) {
            try NodeOutput.duration(text, flag: "--timeout")
        }
    }

    @Test("the list table has a header and aligned columns")
    func table() {
        let report = VMReport(id: "a", name: "a-long-name", backend: "qemu", state: "Running", failure: nil, pid: 7,
                              vmmState: nil, vcpus: 1, memoryBytes: 64 << 20, nics: 0, disks: 0, runtimeDirectory: "", serialLog: "")
        let lines = NodeOutput.table([report]).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix("NAME         STATE"))
        #expect(lines[1].hasPrefix("a-long-name  Running  qemu     7"))
    }
}

@Suite("node local socket log lines")
struct NodeServerLogTests {
    @Test("changes and refusals are logged, successful reads are not")
    func lines() {
        #expect(NodeLocalServer.logLine(.start(name: "web1"), .ok, elapsed: .milliseconds(152)) == "vm start web1: ok (0.152 s)")
        let refusal = NodeResponse.error(NodeServiceError(code: .notFound, message: "no vm named 'x'"))
        #expect(NodeLocalServer.logLine(.info(name: "x"), refusal, elapsed: .zero) == "vm info x: not_found: no vm named 'x' (0.000 s)")
        #expect(NodeLocalServer.logLine(.list, .vms([]), elapsed: .zero) == nil)
    }
}
