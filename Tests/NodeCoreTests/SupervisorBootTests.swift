import Glibc
import Testing
import LinuxSys
@testable import NodeCore

/// Process records carry the kernel's boot id, so a record that outlived a reboot is never adopted.
@Suite struct SupervisorBootTests {
    @Test func recordsCarryThisKernelBoot() throws {
        let stateDir = try makeTemporaryDirectory("boot-id")
        defer { removeTree(stateDir) }
        let bootID = try #require(KernelBoot.id)
        #expect(try readProcFile("/proc/sys/kernel/random/boot_id").hasPrefix(bootID))
        let store = try SupervisorStateStore(directory: stateDir)
        try store.write(SupervisedVM(vmID: "now", identity: ProcessIdentity(pid: 1, startTime: 1), logs: [:], oomKillsAtStart: nil))
        let loaded = try store.loadAll()
        #expect(loaded.corrupt.isEmpty)
        #expect(loaded.records.map(\.bootID) == [bootID])
        #expect(listDirectory(stateDir) == ["now.json"], "no temporary file left")
    }

    @Test func recordOfAnEarlierBootIsStaleEvenWhenItsProcessMatches() async throws {
        let stateDir = try makeTemporaryDirectory("earlier-boot")
        defer { removeTree(stateDir) }
        let store = try SupervisorStateStore(directory: stateDir)
        // This very process, pid and start time exact: only the boot id tells the record is not about it.
        let me = try ProcessIdentity.of(pid: getpid())
        try store.write(SupervisedVM(vmID: "rebooted", identity: me, logs: [:], oomKillsAtStart: nil,
                                     bootID: "00000000-0000-0000-0000-000000000000"))
        let supervisor = try Supervisor(stateDirectory: stateDir)
        let report = try await supervisor.adopt()
        #expect(report.adopted.isEmpty)
        #expect(report.stale.map { $0.reason } == [.earlierBoot])
        #expect(await supervisor.list().isEmpty)
        #expect(listDirectory(stateDir).isEmpty)
    }

    @Test func recordWithoutBootIDIsCheckedByPidAndStartTime() async throws {
        let stateDir = try makeTemporaryDirectory("no-boot-id")
        defer { removeTree(stateDir) }
        let store = try SupervisorStateStore(directory: stateDir)
        let me = try ProcessIdentity.of(pid: getpid())
        try store.write(SupervisedVM(vmID: "legacy", identity: ProcessIdentity(pid: me.pid, startTime: me.startTime + 1),
                                     logs: [:], oomKillsAtStart: nil, bootID: nil))
        let report = try await Supervisor(stateDirectory: stateDir).adopt()
        #expect(report.stale.map { $0.reason } == [.pidReused])
    }
}
