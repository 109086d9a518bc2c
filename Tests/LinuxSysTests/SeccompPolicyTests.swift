import Glibc
import Testing
@testable import LinuxSys

@Suite struct SeccompPolicyTests {
    @Test func builtInVMMPolicyCompilesWithAReasonPerRule() throws {
        let policy = SeccompPolicy.vmmDefault
        #expect(policy.rules.allSatisfy { !$0.reason.isEmpty })
        let names = Set(policy.rules.map(\.syscall))
        for needed in ["execve", "ioctl", "seccomp", "prctl", "ppoll", "eventfd2", "timerfd_create", "io_uring_enter", "epoll_pwait", "clone", "futex"] {
            #expect(names.contains(needed), "\(needed) missing from the VMM policy")
        }
        for denied in ["mount", "ptrace", "unshare", "setns", "bpf", "kexec_load", "init_module", "process_vm_writev", "setuid"] {
            #expect(!names.contains(denied), "\(denied) must stay denied")
        }
        let program = try policy.compile()
        #expect(program.instructionCount > 10)
        #expect(program.bytes.count == program.instructionCount * 8)
    }

    @Test func builtInPolicyRoundTripsThroughItsFileFormat() throws {
        let policy = SeccompPolicy.vmmDefault
        #expect(try SeccompPolicy.parse(json: policy.json) == policy)
        let odd = SeccompPolicy(defaultAction: .kill, rules: [SeccompRule("read", reason: "a \"quoted\" \\ reason\twith\u{1} controls")])
        #expect(try SeccompPolicy.parse(json: odd.json) == odd)
    }

    @Test func jsonPolicyParses() throws {
        let policy = try SeccompPolicy.parse(json: """
            {"default_action": "kill",
             "rules": [{"syscall": "read", "reason": "input"},
                       {"syscall": "ioctl", "reason": "kvm", "args": [{"index": 1, "op": "eq", "value": "0xAE80"}]},
                       {"syscall": "clone", "reason": "threads", "args": [{"index": 0, "op": "masked_eq", "mask": 2080505856, "value": 0}]},
                       {"syscall": "clone3", "reason": "fallback", "errno": 38}]}
            """)
        #expect(policy.defaultAction == .kill)
        #expect(policy.rules.count == 4)
        #expect(policy.rules[1].arguments == [SeccompArgumentCondition(index: 1, .equal, 0xAE80)])
        #expect(policy.rules[2].arguments == [SeccompArgumentCondition(index: 0, .maskedEqual, 0, mask: 2_080_505_856)])
        #expect(policy.rules[3].action == .errno(38))
        _ = try policy.compile()
    }

    static let badFiles: [(String, String)] = [
        (#"{"rules": [{"syscall": "read", "reason": "r"}]}"#, "default_action"),
        (#"{"default_action": "trap", "rules": [{"syscall": "read", "reason": "r"}]}"#, "default_action"),
        (#"{"default_action": "errno", "rules": [{"syscall": "read"}]}"#, "rules[0].reason"),
        (#"{"default_action": "errno", "rules": [{"syscall": "read", "reason": "r", "comment": "x"}]}"#, "rules[0].comment"),
        (#"{"default_action": "errno", "rules": [{"syscall": 3, "reason": "r"}]}"#, "rules[0].syscall"),
        (#"{"default_action": "errno", "rules": [{"syscall": "read", "reason": "r", "args": [{"index": 0, "op": "equals", "value": 1}]}]}"#, "rules[0].args[0].op"),
        (#"{"default_action": "errno", "rules": [{"syscall": "read", "reason": "r", "args": [{"index": 6, "op": "eq", "value": 1}]}]}"#, "rules[0].args[0].index"),
        (#"{"default_action": "errno", "rules": [{"syscall": "read", "reason": "r", "args": [{"index": 0, "op": "eq", "value": -1}]}]}"#, "rules[0].args[0].value"),
        (#"{"default_action": "errno", "rules": [{"syscall": "read", "reason": "r", "args": [{"index": 0, "op": "masked_eq", "value": 1}]}]}"#, "rules[0].args[0].mask"),
        (#"{"default_action": "errno", "rules": [{"syscall": "read", "reason": "r", "args": [{"index": 0, "op": "eq", "value": 1, "mask": 3}]}]}"#, "rules[0].args[0].mask"),
        (#"{"default_action": "errno", "rules": [{"syscall": "read", "reason": "r", "errno": 5000}]}"#, "rules[0].errno"),
        (#"{"default_action": "errno", "rules": []}"#, "rules"),
        (#"[1, 2]"#, "policy"),
    ]

    @Test(arguments: badFiles)
    func badPolicyNamesTheField(json: String, field: String) {
        do {
            _ = try SeccompPolicy.parse(json: json)
            Issue.record("accepted \(json)")
        } catch {
            guard case .invalid(let issues) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(issues.map(\.field).contains(field), "\(issues)")
        }
    }

    @Test func notJSONIsUnreadable() {
        do {
            _ = try SeccompPolicy.parse(json: "{nope", source: "/etc/qarax/seccomp.json")
            Issue.record("parsed invalid JSON")
        } catch {
            guard case .unreadable(let path, let reason) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(path == "/etc/qarax/seccomp.json")
            #expect(reason.hasPrefix("not valid JSON"))
        }
    }

    @Test func unknownSyscallIsNamedByCompile() throws {
        let policy = SeccompPolicy(defaultAction: .errno, rules: [SeccompRule("read", reason: "r"), SeccompRule("reed", reason: "typo")])
        do {
            _ = try policy.compile()
            Issue.record("compiled a policy with an unknown syscall")
        } catch {
            #expect(error == .invalid([FieldIssue(field: "rules[1].syscall", value: "\"reed\"",
                                                  reason: "is not a system call libseccomp knows on this architecture")]))
        }
    }

    @Test func loadReadsAFileAndResolvesNames() throws {
        let path = "/tmp/qx-seccomp-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json"
        defer { unlink(path) }
        let json = #"{"default_action": "errno", "rules": [{"syscall": "execve", "reason": "start"}, {"syscall": "opne", "reason": "typo"}]}"#
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        _ = json.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
        #expect(throws: SeccompPolicyError.invalid([FieldIssue(field: "rules[1].syscall", value: "\"opne\"",
                                                               reason: "is not a system call libseccomp knows on this architecture")])) {
            _ = try SeccompPolicy.load(contentsOf: path)
        }
        do {
            _ = try SeccompPolicy.load(contentsOf: path + ".missing")
            Issue.record("loaded a missing file")
        } catch {
            guard case .unreadable(let reportedPath, _) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(reportedPath == path + ".missing")
        }
    }
}
