import Glibc
import Testing
@testable import LinuxSys

@Suite struct ProcessIdentityTests {
    @Test func parsesStartTimeAfterTrickyCommandName() {
        let stat = "1234 (a) b) (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
        #expect(ProcessIdentity.parseStartTime(stat: stat) == 987654)
        #expect(ProcessIdentity.parseStartTime(stat: "1 (x) S 1 2") == nil)
    }

    @Test func ownIdentityIsStableAndAlive() throws {
        let me = try ProcessIdentity.of(pid: getpid())
        #expect(me == (try ProcessIdentity.of(pid: getpid())))
        #expect(me.isAlive())
        #expect(!ProcessIdentity(pid: me.pid, startTime: me.startTime + 1).isAlive())
    }
}
