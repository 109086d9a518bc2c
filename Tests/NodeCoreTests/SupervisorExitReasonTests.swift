import Glibc
import Testing
import LinuxSys
import NodeCore

@Suite struct SupervisorExitReasonTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let exit: ChildExit
        let sent: Set<Int32>
        let oom: (UInt64?, UInt64?)
        let expected: ExitReason
        var testDescription: String { "\(exit), sent \(sent.sorted()), oom \(oom) → \(expected)" }
    }

    static let cases: [Case] = [
        Case(exit: .exited(status: 0), sent: [], oom: (nil, nil), expected: .exited(status: 0)),
        Case(exit: .exited(status: 3), sent: [SIGTERM], oom: (0, 1), expected: .exited(status: 3)),
        Case(exit: .signaled(signal: SIGSEGV, coreDumped: true), sent: [], oom: (nil, nil),
             expected: .signaled(signal: SIGSEGV, coreDumped: true)),
        Case(exit: .signaled(signal: SIGSYS, coreDumped: true), sent: [], oom: (nil, nil),
             expected: .killedBySeccomp(coreDumped: true)),
        Case(exit: .signaled(signal: SIGKILL, coreDumped: false), sent: [], oom: (2, 3), expected: .oomKilled),
        Case(exit: .signaled(signal: SIGKILL, coreDumped: false), sent: [], oom: (2, 2),
             expected: .signaled(signal: SIGKILL, coreDumped: false)),
        Case(exit: .signaled(signal: SIGKILL, coreDumped: false), sent: [], oom: (nil, 3),
             expected: .signaled(signal: SIGKILL, coreDumped: false)),
        Case(exit: .signaled(signal: SIGKILL, coreDumped: false), sent: [SIGTERM, SIGKILL], oom: (0, 1),
             expected: .killedByUs(signal: SIGKILL)),
        Case(exit: .signaled(signal: SIGTERM, coreDumped: false), sent: [SIGTERM], oom: (nil, nil),
             expected: .killedByUs(signal: SIGTERM)),
        Case(exit: .signaled(signal: SIGTERM, coreDumped: false), sent: [], oom: (nil, nil),
             expected: .signaled(signal: SIGTERM, coreDumped: false)),
        Case(exit: .exitedUnknownStatus, sent: [], oom: (0, 1), expected: .oomKilled),
        Case(exit: .exitedUnknownStatus, sent: [SIGKILL], oom: (nil, nil), expected: .exitedUnknownStatus),
    ]

    @Test(arguments: cases)
    func classification(_ c: Case) {
        #expect(ExitReason.classify(c.exit, signalsSent: c.sent, oomKillsAtStart: c.oom.0, oomKillsAtExit: c.oom.1)
                == c.expected)
    }
}
