import CShims
import Glibc
import Synchronization
import Testing
import LinuxSys
@testable import NodeCore

/// Real children under a real supervisor.
@Suite(.serialized) struct SupervisorTests {
    @Test func twoHundredConcurrentChildrenEachExitDeliveredOnceWithoutZombiesOrLeakedFDs() async throws {
        let stateDir = try makeTemporaryDirectory("sup200")
        defer { removeTree(stateDir) }
        let count = 200
        var expected: [String: (identity: ProcessIdentity, status: Int32)] = [:]
        var children: [Child] = []
        var pidfds: Set<FileIdentity> = []
        do {
            let supervisor = try Supervisor(stateDirectory: stateDir)
            for i in 0..<count {
                let status = Int32.random(in: 0...120)
                let delay = ["0", "0.01", "0.02", "0.05", "0.1"].randomElement() ?? "0"
                let child = try Child(["/bin/sh", "-c", "sleep \(delay); exit \(status)"])
                children.append(child)
                pidfds.insert(try child.pidfdIdentity())
                try await supervisor.watch(vmID: "vm\(i)", pidfd: try child.pidfd(), identity: child.identity)
                expected["vm\(i)"] = (child.identity, status)
            }
            // One reactor thread watches them all.
            #expect(listDirectory("/proc/self/task").filter {
                (try? readProcFile("/proc/self/task/\($0)/comm")) == "qarax-reactor\n"
            }.count == 1)
            let seen = try await withDeadline {
                var seen: [String: [ProcessExit]] = [:]
                var total = 0
                for await exit in supervisor.exits {
                    seen[exit.vmID, default: []].append(exit)
                    total += 1
                    if total == count { break }
                }
                return seen
            }
            #expect(seen.count == count)
            for (vmID, (identity, status)) in expected {
                let exits = seen[vmID] ?? []
                #expect(exits.count == 1, "\(vmID) delivered \(exits.count) times")
                #expect(exits.first?.reason == .exited(status: status))
                #expect(exits.first?.identity == identity)
                #expect(!stillExists(identity), "\(identity) of \(vmID) not reaped")
            }
            // The reactor closes a pidfd before it reports the exit, and the supervisor answers this
            // only after it has finished with every VM: by now both have closed their pidfds.
            #expect(await supervisor.list().isEmpty)
            #expect(listDirectory(stateDir).isEmpty)
        }
        children = []
        // Other suites open and close descriptors in parallel, so the check looks at what the
        // descriptors point to, not how many there are: no pidfd of our children, nothing in the state
        // directory. pidfs gives each process's pidfds one inode, so a reaped child's stay recognisable.
        #expect(pidfds.count == count, "each child's pidfds have their own inode (pidfs, Linux 6.9+)")
        let leaked = openDescriptors().filter {
            pidfds.contains($0.file) || $0.target == stateDir || $0.target.hasPrefix(stateDir + "/")
        }
        #expect(leaked.isEmpty, "still open: \(leaked)")
    }

    @Test func signalAndSeccompAndOOMReasons() async throws {
        let stateDir = try makeTemporaryDirectory("reasons")
        defer { removeTree(stateDir) }
        let supervisor = try Supervisor(stateDirectory: stateDir)
        let oomKills = Mutex<UInt64>(3)

        let plain = try Child(["/bin/sleep", "1000"])
        // Without a core limit of 0 the kernel would dump a core and report CLD_DUMPED.
        let sys = try await Child.afterSetup("ulimit -c 0", exec: "/bin/sleep 1000")
        let oom = try Child(["/bin/sleep", "1000"])
        try await supervisor.watch(vmID: "plain", pidfd: try plain.pidfd(), identity: plain.identity)
        try await supervisor.watch(vmID: "sys", pidfd: try sys.pidfd(), identity: sys.identity)
        // The cgroup code supplies this probe in production; here a counter stands in for memory.events.
        try await supervisor.watch(vmID: "oom", pidfd: try oom.pidfd(), identity: oom.identity,
                                   oomProbe: { oomKills.withLock { $0 } })

        #expect(plain.signal(SIGUSR2) == 0)
        #expect(sys.signal(SIGSYS) == 0)
        oomKills.withLock { $0 += 1 }
        #expect(oom.signal(SIGKILL) == 0)

        let plainExit = try await withDeadline { try await supervisor.exit(of: "plain") }
        let sysExit = try await withDeadline { try await supervisor.exit(of: "sys") }
        let oomExit = try await withDeadline { try await supervisor.exit(of: "oom") }
        #expect(plainExit.reason == .signaled(signal: SIGUSR2, coreDumped: false))
        #expect(sysExit.reason == .killedBySeccomp(coreDumped: false))
        #expect(oomExit.reason == .oomKilled)
        #expect(plainExit.duringTeardownStep == nil)
    }

    @Test func childIgnoringSIGTERMEndsAtSIGKILL() async throws {
        let stateDir = try makeTemporaryDirectory("ladder-kill")
        defer { removeTree(stateDir) }
        let supervisor = try Supervisor(stateDirectory: stateDir)
        let child = try await Child.afterSetup("trap '' TERM", exec: "/bin/sleep 1000")
        let cleaned = OneShot<ExitReason>()
        try await supervisor.watch(vmID: "stubborn", pidfd: try child.pidfd(), identity: child.identity,
                                   cleanup: { cleaned.set($0.reason) })
        let report = try await withDeadline {
            try await supervisor.stop("stubborn", ladder: TeardownLadder(terminateTimeout: .milliseconds(200)))
        }
        #expect(report.endedBy == .kill)
        #expect(report.exit.reason == .killedByUs(signal: SIGKILL))
        #expect(cleaned.current == .killedByUs(signal: SIGKILL))
    }

    @Test func childHonouringSIGTERMEndsAtSIGTERM() async throws {
        let stateDir = try makeTemporaryDirectory("ladder-term")
        defer { removeTree(stateDir) }
        let supervisor = try Supervisor(stateDirectory: stateDir)
        let child = try Child(["/bin/sleep", "1000"])
        try await supervisor.watch(vmID: "polite", pidfd: try child.pidfd(), identity: child.identity)
        let report = try await withDeadline {
            try await supervisor.stop("polite", ladder: TeardownLadder(terminateTimeout: .seconds(30)))
        }
        #expect(report.endedBy == .terminate)
        #expect(report.exit.reason == .killedByUs(signal: SIGTERM))
        #expect(listDirectory(stateDir).isEmpty)
    }

    @Test func gracefulStepThatMakesTheChildExitEndsAtGraceful() async throws {
        let stateDir = try makeTemporaryDirectory("ladder-graceful")
        defer { removeTree(stateDir) }
        let supervisor = try Supervisor(stateDirectory: stateDir)
        let stdin = try PipePair()
        let child = try Child(["/bin/sh", "-c", "read line; exit 3"], stdinFD: stdin.readEnd.rawValue)
        let writer = try stdin.writeEnd.duplicate()
        _ = consume stdin
        let api = Mutex<FileDescriptor?>(writer)
        try await supervisor.watch(vmID: "graceful", pidfd: try child.pidfd(), identity: child.identity)
        let ladder = TeardownLadder(graceful: {
            // Stands in for the VMM's shutdown API call.
            api.withLock { slot in
                if let fd = slot.take() {
                    _ = Glibc.write(fd.rawValue, "quit\n", 5)
                }
            }
        }, gracefulTimeout: .seconds(30))
        let report = try await withDeadline { try await supervisor.stop("graceful", ladder: ladder) }
        #expect(report.endedBy == .graceful)
        #expect(report.exit.reason == .exited(status: 3))
        #expect(report.exit.duringTeardownStep == .graceful)
    }

    @Test func readoptionAfterSupervisorIsDropped() async throws {
        let stateDir = try makeTemporaryDirectory("adopt")
        defer { removeTree(stateDir) }
        var children: [String: ProcessIdentity] = [:]
        var running: [Child] = []
        do {
            let first = try Supervisor(stateDirectory: stateDir)
            for i in 0..<5 {
                let child = try Child(["/bin/sleep", "1000"])
                running.append(child)
                try await first.watch(vmID: "keep\(i)", pidfd: try child.pidfd(), identity: child.identity)
                children["keep\(i)"] = child.identity
            }
            #expect(await first.list().count == 5)
            await first.detachAll()
        }
        #expect(listDirectory(stateDir) == (0..<5).map { "keep\($0).json" })

        let second = try Supervisor(stateDirectory: stateDir)
        let cleaned = Mutex<Set<String>>([])
        let report = try await second.adopt(cleanup: { record in
            { exit in cleaned.withLock { _ = $0.insert(exit.vmID) } }
        })
        #expect(Set(report.adopted.map(\.vmID)) == Set(children.keys))
        #expect(report.stale.isEmpty)
        #expect(await second.list().map(\.identity).sorted { $0.pid < $1.pid } == children.values.sorted { $0.pid < $1.pid })

        for child in running { #expect(child.signal(SIGKILL) == 0) }
        let exits = try await withDeadline {
            var exits: [ProcessExit] = []
            for await exit in second.exits {
                exits.append(exit)
                if exits.count == 5 { break }
            }
            return exits
        }
        #expect(Set(exits.map(\.vmID)) == Set(children.keys))
        for exit in exits {
            // Still our child inside this test process, so the status is known and the child reaped.
            #expect(exit.reason == .signaled(signal: SIGKILL, coreDumped: false))
            #expect(!stillExists(exit.identity))
        }
        #expect(cleaned.withLock { $0 } == Set(children.keys))
        #expect(listDirectory(stateDir).isEmpty)
    }

    /// A FIFO that the VMM holds open read-write outlives the daemon's read end, so a new supervisor
    /// can reopen it and keep filling the same log.
    @Test func readoptedOutputKeepsFlowingIntoTheSameLog() async throws {
        let stateDir = try makeTemporaryDirectory("adopt-fifo")
        defer { removeTree(stateDir) }
        let dir = try makeTemporaryDirectory("adopt-fifo-files")
        defer { removeTree(dir) }
        let fifo = "\(dir)/console.fifo"
        let logPath = "\(dir)/console.log"
        #expect(mkfifo(fifo, 0o600) == 0)
        let stdin = try PipePair()
        let child = try Child(["/bin/sh", "-c", "exec 1<>\(fifo); echo before; read x; echo after; exit 5"],
                              stdinFD: stdin.readEnd.rawValue)
        let input = try stdin.writeEnd.duplicate()
        _ = consume stdin
        do {
            let first = try Supervisor(stateDirectory: stateDir)
            let output = VMOutput(name: "console", reading: try FileDescriptor.open(fifo, O_RDONLY | O_NONBLOCK),
                                  logPath: logPath)
            try await first.watch(vmID: "fifo", pidfd: try child.pidfd(), identity: child.identity, outputs: [output])
            // The first supervisor writes the first line before it lets go.
            try await awaitFile(logPath, toRead: "before\n")
            await first.detachAll()
        }
        let second = try Supervisor(stateDirectory: stateDir)
        let report = try await second.adopt(outputs: { record in
            guard let path = record.logs["console"],
                  let fd = try? FileDescriptor.open(fifo, O_RDONLY | O_NONBLOCK) else { return [] }
            return [VMOutput(name: "console", reading: fd, logPath: path)]
        })
        #expect(report.adopted.map(\.vmID) == ["fifo"])
        #expect(report.outputErrors.isEmpty)
        #expect(Glibc.write(input.rawValue, "go\n", 3) == 3)
        let exit = try await withDeadline { try await second.exit(of: "fifo") }
        #expect(exit.reason == .exited(status: 5))
        #expect(try readProcFile(logPath) == "before\nafter\n")
    }

    @Test func staleRecordsAreNotAdopted() async throws {
        let stateDir = try makeTemporaryDirectory("stale")
        defer { removeTree(stateDir) }
        let store = try SupervisorStateStore(directory: stateDir)
        let me = try ProcessIdentity.of(pid: getpid())
        // Our own pid with another start time: a pid reused by an unrelated process.
        try store.write(SupervisedVM(vmID: "reused", identity: ProcessIdentity(pid: me.pid, startTime: me.startTime + 1),
                                     logs: [:], oomKillsAtStart: nil))
        // A child that has exited and been reaped.
        let pid = try spawn(["/bin/sh", "-c", "exit 0"])
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        try store.write(SupervisedVM(vmID: "gone", identity: ProcessIdentity(pid: pid, startTime: 1),
                                     logs: [:], oomKillsAtStart: nil))
        let supervisor = try Supervisor(stateDirectory: stateDir)
        let cleaned = Mutex<Set<String>>([])
        let report = try await supervisor.adopt(cleanup: { _ in
            { exit in cleaned.withLock { _ = $0.insert(exit.vmID) } }
        })
        #expect(report.adopted.isEmpty)
        let stale = Dictionary(uniqueKeysWithValues: report.stale.map { ($0.record.vmID, $0.reason) })
        #expect(stale["reused"] == .pidReused)
        #expect(stale["gone"] != nil)
        #expect(cleaned.withLock { $0 } == ["reused", "gone"])
        #expect(await supervisor.list().isEmpty)
        #expect(listDirectory(stateDir).isEmpty)
    }

    @Test func corruptRecordIsReportedAndKept() async throws {
        let stateDir = try makeTemporaryDirectory("corrupt")
        defer { removeTree(stateDir) }
        let fd = try FileDescriptor.open("\(stateDir)/bad.json", O_WRONLY | O_CREAT, mode: 0o600)
        _ = Glibc.write(fd.rawValue, "{not json", 9)
        let supervisor = try Supervisor(stateDirectory: stateDir)
        let report = try await supervisor.adopt()
        #expect(report.corrupt.count == 1)
        #expect(listDirectory(stateDir) == ["bad.json"])
    }

    @Test func consoleOutputArrivesInRotatedLogWithinCap() async throws {
        let stateDir = try makeTemporaryDirectory("console")
        defer { removeTree(stateDir) }
        let logDir = try makeTemporaryDirectory("console-logs")
        defer { removeTree(logDir) }
        let supervisor = try Supervisor(stateDirectory: stateDir)
        let rotation = try LogRotation(maxFileBytes: 8 * 1024, fileCount: 3)
        let pipe = try PipePair()
        let script = "i=0; while [ $i -lt 3000 ]; do echo \"console line $i\"; i=$((i+1)); done"
        let child = try Child(["/bin/sh", "-c", script], stdoutFD: pipe.writeEnd.rawValue)
        let output = VMOutput(name: "console", reading: try pipe.readEnd.duplicate(),
                              logPath: "\(logDir)/console.log", rotation: rotation)
        _ = consume pipe
        try await supervisor.watch(vmID: "talker", pidfd: try child.pidfd(), identity: child.identity, outputs: [output])
        let exit = try await withDeadline { try await supervisor.exit(of: "talker") }
        #expect(exit.reason == .exited(status: 0))
        #expect(exit.droppedLogBytes == 0)
        let files = listDirectory(logDir)
        #expect(files == ["console.log", "console.log.1", "console.log.2"])
        let total = files.compactMap { fileSize("\(logDir)/\($0)") }.reduce(0, +)
        #expect(total <= rotation.totalBytes)
        let newest = try readProcFile("\(logDir)/console.log")
        #expect(newest.hasSuffix("console line 2999\n"))
    }

    @Test(arguments: ["", "../x", ".hidden", "a b", String(repeating: "v", count: 65)])
    func invalidVMIDIsRejectedNamingTheField(vmID: String) async throws {
        let stateDir = try makeTemporaryDirectory("badid")
        defer { removeTree(stateDir) }
        let supervisor = try Supervisor(stateDirectory: stateDir)
        let child = try Child(["/bin/sh", "-c", "exit 0"])
        defer {
            var status: Int32 = 0
            _ = waitpid(child.pid, &status, 0)
        }
        await #expect(throws: SupervisorError.invalidValue(
            field: "vmID", value: "\"\(vmID)\"",
            reason: "must be 1-64 characters of A-Z a-z 0-9 . _ - and not start with '.'")) {
            try await supervisor.watch(vmID: vmID, pidfd: try child.pidfd(), identity: child.identity)
        }
    }

    @Test func secondWatchOfSameVMIsRejected() async throws {
        let stateDir = try makeTemporaryDirectory("dup")
        defer { removeTree(stateDir) }
        let supervisor = try Supervisor(stateDirectory: stateDir)
        let child = try Child(["/bin/sleep", "1000"])
        try await supervisor.watch(vmID: "once", pidfd: try child.pidfd(), identity: child.identity)
        await #expect(throws: SupervisorError.alreadyWatched(vmID: "once")) {
            try await supervisor.watch(vmID: "once", pidfd: try child.pidfd(), identity: child.identity)
        }
        let report = try await withDeadline { try await supervisor.stop("once") }
        #expect(report.endedBy == .terminate)
    }
}
