#if canImport(Glibc)
import Glibc
#endif
import CShims
import Dispatch
public import LinuxSys
import Synchronization

/// A VMM output pipe (console, serial…) to be drained into a rotated log file.
public final class VMOutput: Sendable {
    public let name: String
    public let logPath: String
    public let rotation: LogRotation
    let pipe: Mutex<FileDescriptor?>
    private let observer = Mutex<(@Sendable (UnsafeRawBufferPointer) -> Void)?>(nil)

    /// Takes the read end of the pipe. `name` is checked by `Supervisor.watch`.
    public init(name: String, reading fd: consuming FileDescriptor, logPath: String, rotation: LogRotation = .standard) {
        self.name = name
        self.logPath = logPath
        self.rotation = rotation
        pipe = Mutex(Optional(fd))
    }

    /// Also hands every chunk read to `body` (on the reactor thread), from the next attachment on.
    public func observe(_ body: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        observer.withLock { $0 = body }
    }

    var tap: (@Sendable (UnsafeRawBufferPointer) -> Void)? { observer.withLock { $0 } }

    func takePipe() -> FileDescriptor? {
        pipe.withLock { slot in
            let fd = slot.take()
            return fd
        }
    }
}

/// How to stop a process: an optional graceful step, then SIGTERM, then SIGKILL, each given a
/// deadline to end the process before the next step starts.
public struct TeardownLadder: Sendable {
    public var graceful: (@Sendable () async -> Void)?
    public var gracefulTimeout: Duration
    public var terminateTimeout: Duration
    public var killTimeout: Duration

    public init(
        graceful: (@Sendable () async -> Void)? = nil,
        gracefulTimeout: Duration = .seconds(10),
        terminateTimeout: Duration = .seconds(5),
        killTimeout: Duration = .seconds(5)
    ) {
        self.graceful = graceful
        self.gracefulTimeout = gracefulTimeout
        self.terminateTimeout = terminateTimeout
        self.killTimeout = killTimeout
    }
}

/// How `Supervisor.stop` ended.
public struct TeardownReport: Sendable, Hashable {
    /// The step during which the process exited; `nil` when it had already exited.
    public let endedBy: TeardownStep?
    public let exit: ProcessExit
}

/// What `Supervisor.adopt` found in the state directory.
public struct AdoptionReport: Sendable {
    public enum StaleReason: Sendable, Hashable {
        /// No process has that pid any more.
        case processGone
        /// The pid now belongs to another process (different start time).
        case pidReused
        /// The record was written in an earlier kernel boot, so its process is gone whatever now
        /// holds its pid (a start time in clock ticks since boot can match again).
        case earlierBoot
    }

    /// Records whose process was verified and is now supervised again.
    public var adopted: [SupervisedVM] = []
    /// Records whose process no longer exists; their cleanup ran and the records were removed.
    public var stale: [(record: SupervisedVM, reason: StaleReason)] = []
    /// Files that could not be decoded (left in place).
    public var corrupt: [SupervisorError] = []
    /// Adopted VMs whose reattached outputs could not be opened (the process is supervised anyway).
    public var outputErrors: [(vmID: String, error: SupervisorError)] = []
}

/// Watches VMM processes: delivers every exit exactly once with a precise reason, drains their
/// output into rotated logs, stops them along a teardown ladder, and keeps per-VM records (which
/// survive a crash of the node, see ``SupervisorStateStore``) so a restarted node can re-adopt them.
public actor Supervisor {
    /// Reads the VM's cgroup OOM-kill counter (`nil` when unreadable).
    public typealias OOMProbe = @Sendable () -> UInt64?
    /// Removes what the VM left behind (cgroup, jail directory, sockets); runs before the exit is delivered.
    public typealias Cleanup = @Sendable (ProcessExit) async -> Void

    private final class Entry {
        let record: SupervisedVM
        let watch: ExitWatch
        let signaller: FileDescriptor
        let oomProbe: OOMProbe?
        let cleanup: Cleanup?
        let logs: [ConsoleLog]
        var readers: [(registration: ReadRegistration, ended: OneShot<Bool>)] = []
        var signalsSent: Set<Int32> = []
        var step: TeardownStep?
        var finishing = false
        let completion = OneShot<ProcessExit>()

        init(record: SupervisedVM, watch: ExitWatch, signaller: consuming FileDescriptor,
             oomProbe: OOMProbe?, cleanup: Cleanup?, logs: [ConsoleLog]) {
            self.record = record
            self.watch = watch
            self.signaller = signaller
            self.oomProbe = oomProbe
            self.cleanup = cleanup
            self.logs = logs
        }
    }

    private let reactor: Reactor
    private let store: SupervisorStateStore
    private let outputDrainTimeout: Duration
    private var entries: [String: Entry] = [:]
    private var finished: [String: ProcessExit] = [:]
    /// VM ids whose `watch` is in progress (between its checks and its entry).
    private var reserved: Set<String> = []
    private let exitContinuation: AsyncStream<ProcessExit>.Continuation

    /// Every exit, exactly once each, in the order they were handled. One consumer.
    public nonisolated let exits: AsyncStream<ProcessExit>

    /// A supervisor keeping its records in `stateDirectory` (created if missing). After an exit,
    /// output pipes are drained until end-of-file for at most `outputDrainTimeout`.
    public init(
        stateDirectory: String, reactor: Reactor? = nil, outputDrainTimeout: Duration = .seconds(1)
    ) throws(SupervisorError) {
        if let reactor {
            self.reactor = reactor
        } else {
            do throws(SystemError) { self.reactor = try Reactor.shared() } catch { throw .system(error) }
        }
        store = try SupervisorStateStore(directory: stateDirectory)
        self.outputDrainTimeout = outputDrainTimeout
        (exits, exitContinuation) = AsyncStream.makeStream(of: ProcessExit.self)
    }

    isolated deinit {
        for entry in entries.values { entry.watch.cancel() }
        exitContinuation.finish()
    }

    /// Supervises a process started by the launcher. Records it, then watches its pidfd and
    /// drains `outputs` into their logs. `oomProbe` reads the VM cgroup's OOM-kill counter.
    public func watch(
        vmID: String,
        pidfd: consuming FileDescriptor,
        identity: ProcessIdentity,
        outputs: [VMOutput] = [],
        oomProbe: OOMProbe? = nil,
        cleanup: Cleanup? = nil
    ) async throws(SupervisorError) {
        try validateName(vmID, field: "vmID")
        var names: Set<String> = []
        for (index, output) in outputs.enumerated() {
            try validateName(output.name, field: "outputs[\(index)].name")
            guard names.insert(output.name).inserted else {
                throw .invalidValue(field: "outputs[\(index)].name", value: "\"\(output.name)\"", reason: "is used twice")
            }
        }
        guard entries[vmID] == nil, !reserved.contains(vmID) else { throw .alreadyWatched(vmID: vmID) }
        reserved.insert(vmID)
        defer { reserved.remove(vmID) }
        let record = SupervisedVM(
            vmID: vmID, identity: identity,
            logs: Dictionary(uniqueKeysWithValues: outputs.map { ($0.name, $0.logPath) }),
            oomKillsAtStart: oomProbe?())
        let store = self.store
        let logs = try await offPool { () throws(SupervisorError) -> [ConsoleLog] in
            let logs = try Supervisor.openLogs(outputs)
            try store.write(record)
            return logs
        }
        let signaller: FileDescriptor
        do throws(SystemError) { signaller = try pidfd.duplicate() } catch {
            try? await offPool { () throws(SupervisorError) in try store.remove(vmID) }
            throw .system(error)
        }
        let entry = Entry(record: record, watch: reactor.watchExit(of: pidfd), signaller: signaller,
                          oomProbe: oomProbe, cleanup: cleanup, logs: logs)
        attach(outputs, logs: logs, to: entry)
        start(entry)
    }

    /// Drains each output pipe into its log from the reactor thread; the log never makes it wait.
    private func attach(_ outputs: [VMOutput], logs: [ConsoleLog], to entry: Entry) {
        for (output, log) in zip(outputs, logs) {
            guard let pipe = output.takePipe() else { continue }
            let tap = output.tap
            let ended = OneShot<Bool>()
            do throws(SystemError) {
                let registration = try reactor.read(pipe) { event in
                    switch event {
                    case .data(let bytes):
                        log.append(bytes)
                        tap?(bytes)
                    case .endOfFile: ended.set(true)
                    case .failed: ended.set(false)
                    }
                    return .proceed
                }
                entry.readers.append((registration, ended))
            } catch {
                ended.set(false)
            }
        }
    }

    private static func openLogs(_ outputs: [VMOutput]) throws(SupervisorError) -> [ConsoleLog] {
        var logs: [ConsoleLog] = []
        for output in outputs {
            do throws(SystemError) {
                logs.append(try ConsoleLog(path: output.logPath, rotation: output.rotation))
            } catch {
                throw .system(error)
            }
        }
        return logs
    }

    private func start(_ entry: Entry) {
        entries[entry.record.vmID] = entry
        finished[entry.record.vmID] = nil
        Task { [weak self, watch = entry.watch, vmID = entry.record.vmID] in
            guard let exit = await watch.wait() else { return }
            await self?.finish(vmID: vmID, exit: exit)
        }
    }

    private func finish(vmID: String, exit: ChildExit) async {
        guard let entry = entries[vmID], !entry.finishing else { return }
        entry.finishing = true
        let reason = ExitReason.classify(exit, signalsSent: entry.signalsSent,
                                         oomKillsAtStart: entry.record.oomKillsAtStart,
                                         oomKillsAtExit: entry.oomProbe?())
        let step = entry.step
        await drainOutputs(of: entry)
        let result = ProcessExit(vmID: vmID, identity: entry.record.identity, reason: reason, status: exit,
                                 duringTeardownStep: step,
                                 droppedLogBytes: entry.logs.reduce(0) { $0 + $1.droppedBytes })
        await entry.cleanup?(result)
        let store = self.store
        try? await offPool { () throws(SupervisorError) in try store.remove(vmID) }
        entries[vmID] = nil
        finished[vmID] = result
        entry.completion.set(result)
        exitContinuation.yield(result)
    }

    /// Waits for each pipe's end-of-file (bounded), stops reading, and flushes the logs.
    private func drainOutputs(of entry: Entry) async {
        let readers = entry.readers
        if !readers.isEmpty {
            _ = await waitWithTimeout(outputDrainTimeout) {
                for reader in readers { _ = await reader.ended.wait() }
                return true
            }
            for reader in readers { reader.registration.cancel() }
        }
        for log in entry.logs { await log.flush() }
    }

    /// Waits for the exit of `vmID` (returns at once if it was already handled).
    public func exit(of vmID: String) async throws(SupervisorError) -> ProcessExit {
        if let done = finished[vmID] { return done }
        guard let entry = entries[vmID] else { throw .notWatched(vmID: vmID) }
        guard let result = await entry.completion.wait() else { throw .cancelled }
        return result
    }

    /// Stops `vmID` along `ladder`, reporting which step ended it. Cleanup runs before this returns.
    public func stop(_ vmID: String, ladder: TeardownLadder = TeardownLadder()) async throws(SupervisorError) -> TeardownReport {
        if let done = finished[vmID] { return TeardownReport(endedBy: nil, exit: done) }
        guard let entry = entries[vmID] else { throw .notWatched(vmID: vmID) }
        if entry.watch.exit != nil || entry.finishing {
            return TeardownReport(endedBy: nil, exit: try await exit(of: vmID))
        }
        var endedBy: TeardownStep?
        if let graceful = ladder.graceful {
            entry.step = .graceful
            let watch = entry.watch
            if await waitWithTimeout(ladder.gracefulTimeout, {
                await graceful()
                return await watch.wait() != nil
            }) == true {
                endedBy = .graceful
            }
        }
        let signals: [(TeardownStep, Int32, Duration)] = [
            (.terminate, SIGTERM, ladder.terminateTimeout), (.kill, SIGKILL, ladder.killTimeout),
        ]
        for (step, signal, timeout) in signals where endedBy == nil {
            if entry.watch.exit != nil { break }
            entry.step = step
            entry.signalsSent.insert(signal)
            let rc = qx_pidfd_send_signal(entry.signaller.rawValue, signal)
            if rc < 0 && rc != -ESRCH {
                throw .system(SystemError("pidfd_send_signal(\(signal)) to pid \(entry.record.identity.pid)", negated: rc))
            }
            let watch = entry.watch
            if await waitWithTimeout(timeout, { await watch.wait() != nil }) == true {
                endedBy = step
            }
        }
        if endedBy == nil && entry.watch.exit != nil { endedBy = entry.step }
        guard endedBy != nil else {
            throw .survivedTeardown(vmID: vmID, pid: entry.record.identity.pid)
        }
        return TeardownReport(endedBy: endedBy, exit: try await exit(of: vmID))
    }

    /// Re-adopts the processes recorded in the state directory by a previous supervisor.
    ///
    /// A record is adopted only when it was written in this kernel boot and a process with its pid
    /// exists and has its start time; the pidfd is opened before the check so it cannot refer to a
    /// later process. Other records are stale: their cleanup runs and they are removed. A pipe's
    /// read end dies with the daemon that held it, so outputs are reattached only where the caller
    /// can reopen them (e.g. FIFOs the VMM holds open): `outputs` gives them per record, and their
    /// logs continue where they were.
    public func adopt(
        oomProbe: @Sendable (SupervisedVM) -> OOMProbe? = { _ in nil },
        cleanup: @Sendable (SupervisedVM) -> Cleanup? = { _ in nil },
        outputs: @Sendable (SupervisedVM) -> [VMOutput] = { _ in [] }
    ) async throws(SupervisorError) -> AdoptionReport {
        var report = AdoptionReport()
        let store = self.store
        let (records, corrupt) = try await offPool { () throws(SupervisorError) in try store.loadAll() }
        report.corrupt = corrupt
        for record in records where entries[record.vmID] == nil && !reserved.contains(record.vmID) {
            if record.isFromEarlierBoot {
                await retire(record, reason: .earlierBoot, cleanup: cleanup(record), into: &report)
                continue
            }
            let pid = record.identity.pid
            let raw = qx_pidfd_open(pid, 0)
            if raw < 0 {
                // ESRCH: no such process. EINVAL: the number is now a thread of some other process.
                await retire(record, reason: raw == -ESRCH ? .processGone : .pidReused,
                             cleanup: cleanup(record), into: &report)
                continue
            }
            let pidfd = FileDescriptor(adopting: raw)
            let current = try? ProcessIdentity.of(pid: pid)
            guard current == record.identity else {
                await retire(record, reason: current == nil ? .processGone : .pidReused,
                             cleanup: cleanup(record), into: &report)
                continue
            }
            let signaller: FileDescriptor
            do throws(SystemError) { signaller = try pidfd.duplicate() } catch { throw .system(error) }
            let reattached = outputs(record)
            reserved.insert(record.vmID)
            var logs: [ConsoleLog] = []
            do throws(SupervisorError) {
                logs = try await offPool { () throws(SupervisorError) in try Supervisor.openLogs(reattached) }
            } catch {
                report.outputErrors.append((record.vmID, error))
            }
            reserved.remove(record.vmID)
            let entry = Entry(record: record, watch: reactor.watchExit(of: pidfd), signaller: signaller,
                              oomProbe: oomProbe(record), cleanup: cleanup(record), logs: logs)
            attach(reattached, logs: logs, to: entry)
            start(entry)
            report.adopted.append(record)
        }
        return report
    }

    private func retire(_ record: SupervisedVM, reason: AdoptionReport.StaleReason, cleanup: Cleanup?,
                        into report: inout AdoptionReport) async {
        let gone = ProcessExit(vmID: record.vmID, identity: record.identity, reason: .exitedUnknownStatus,
                               status: .exitedUnknownStatus, duringTeardownStep: nil, droppedLogBytes: 0)
        await cleanup?(gone)
        let store = self.store
        try? await offPool { () throws(SupervisorError) in try store.remove(record.vmID) }
        report.stale.append((record, reason))
    }

    /// The records of every process currently supervised.
    public func list() -> [SupervisedVM] {
        entries.values.map(\.record).sorted { $0.vmID < $1.vmID }
    }

    /// Stops supervising everything without signalling anyone: watches and readers are cancelled,
    /// records stay on disk for the next supervisor to adopt. Used when the node daemon shuts down.
    public func detachAll() async {
        for entry in entries.values where !entry.finishing {
            entry.watch.cancel()
            for reader in entry.readers { reader.registration.cancel() }
            for log in entry.logs { await log.flush() }
        }
        entries = entries.filter { $0.value.finishing }
    }
}

/// Runs `body` for at most `timeout`; `nil` when the time ran out first (the body is cancelled).
func waitWithTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await body() }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        return await group.next() ?? nil
    }
}

/// The queue for the supervisor's file work (state records, log file opens), so it never
/// blocks the cooperative pool. Serial, so record writes and removals keep their order.
private let stateQueue = DispatchQueue(label: "qarax.supervisor-state", qos: .utility)

/// Runs blocking file work on `stateQueue`.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws(SupervisorError) -> T) async throws(SupervisorError) -> T {
    let result: Result<T, SupervisorError> = await withCheckedContinuation { continuation in
        stateQueue.async {
            do throws(SupervisorError) {
                continuation.resume(returning: .success(try body()))
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
    }
    return try result.get()
}
