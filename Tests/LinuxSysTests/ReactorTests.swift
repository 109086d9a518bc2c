import CShims
import Glibc
import Synchronization
import Testing
import LinuxSys

@Suite struct ReactorTests {
    @Test(arguments: [0, 1, 7, 255])
    func exitStatusIsReportedAndChildReaped(status: Int32) async throws {
        let reactor = try Reactor.shared()
        let pid = try spawn(["/bin/sh", "-c", "exit \(status)"])
        let identity = try ProcessIdentity.of(pid: pid)
        #expect(stillExists(identity))
        let watch = reactor.watchExit(of: try pidfd(of: pid))
        let exit = try await withDeadline { await watch.wait() }
        #expect(exit == .exited(status: status))
        #expect(!stillExists(identity))
    }

    @Test(arguments: [SIGKILL, SIGTERM, SIGUSR1])
    func signalIsReported(signal: Int32) async throws {
        let reactor = try Reactor.shared()
        let pid = try spawn(["/bin/sleep", "1000"])
        let fd = try pidfd(of: pid)
        defer { killIfAlive(fd) }
        #expect(qx_pidfd_send_signal(fd.rawValue, signal) == 0)
        let watch = reactor.watchExit(of: try fd.duplicate())
        let exit = try await withDeadline { await watch.wait() }
        #expect(exit == .signaled(signal: signal, coreDumped: false))
    }

    /// SIGSYS's default action is to terminate with a core dump; the kernel reports CLD_DUMPED
    /// when a core was written and CLD_KILLED when core dumps are off (RLIMIT_CORE 0 or no pattern).
    @Test func sigsysIsReportedAsSignalWithCoreFlag() async throws {
        let reactor = try Reactor.shared()
        let pid = try await spawnAfterSetup("ulimit -c 0", exec: "/bin/sleep 1000")
        let fd = try pidfd(of: pid)
        defer { killIfAlive(fd) }
        let watch = reactor.watchExit(of: try fd.duplicate())
        #expect(qx_pidfd_send_signal(fd.rawValue, SIGSYS) == 0)
        let exit = try await withDeadline { await watch.wait() }
        guard case .signaled(let signal, _)? = exit else {
            Issue.record("unexpected \(String(describing: exit))")
            return
        }
        #expect(signal == SIGSYS)
    }

    @Test func cancelledWatchLeavesProcessUnreaped() async throws {
        let reactor = try Reactor.shared()
        let pid = try spawn(["/bin/sleep", "1000"])
        let fd = try pidfd(of: pid)
        defer { killIfAlive(fd) }
        let watch = reactor.watchExit(of: try fd.duplicate())
        watch.cancel()
        #expect(try await withDeadline { await watch.wait() } == nil)
        #expect(qx_pidfd_send_signal(fd.rawValue, SIGKILL) == 0)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
    }

    /// A process that is not our child (re-adopted after a restart) cannot be reaped by us:
    /// waitid gives ECHILD and the exit is reported honestly as unknown.
    @Test func exitOfNonChildIsReportedWithUnknownStatus() async throws {
        let reactor = try Reactor.shared()
        let pipe = try PipePair()
        // The shell starts a background sleep, prints its pid and exits: the sleep is orphaned.
        let shell = try spawn(["/bin/sh", "-c", "/bin/sleep 1000 </dev/null >/dev/null 2>&1 & echo $!"],
                              stdoutFD: pipe.writeEnd.rawValue)
        let output = Mutex<[UInt8]>([])
        let done = OneShot<Bool>()
        _ = try reactor.read(try pipe.readEnd.duplicate()) { event in
            switch event {
            case .data(let bytes): output.withLock { $0.append(contentsOf: bytes) }
            case .endOfFile, .failed: done.set(true)
            }
            return .proceed
        }
        _ = consume pipe
        _ = try await withDeadline { await done.wait() }
        var status: Int32 = 0
        #expect(waitpid(shell, &status, 0) == shell)
        let text = output.withLock { String(decoding: $0, as: UTF8.self) }
        guard let orphan = pid_t(text.filter { $0.isNumber }) else {
            Issue.record("no pid in \(text)")
            return
        }
        let fd = try pidfd(of: orphan)
        defer { killIfAlive(fd) }
        let watch = reactor.watchExit(of: try fd.duplicate())
        #expect(qx_pidfd_send_signal(fd.rawValue, SIGKILL) == 0)
        #expect(try await withDeadline { await watch.wait() } == .exitedUnknownStatus)
    }

    @Test func pipeDataThenEndOfFile() async throws {
        let reactor = try Reactor.shared()
        let pipe = try PipePair()
        let pid = try spawn(["/bin/sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"],
                            stdoutFD: pipe.writeEnd.rawValue)
        let received = Mutex<[UInt8]>([])
        let done = OneShot<Bool>()
        _ = try reactor.read(try pipe.readEnd.duplicate(), chunkSize: 100) { event in
            switch event {
            case .data(let bytes): received.withLock { $0.append(contentsOf: bytes) }
            case .endOfFile: done.set(true)
            case .failed: done.set(false)
            }
            return .proceed
        }
        _ = consume pipe
        let watch = reactor.watchExit(of: try pidfd(of: pid))
        #expect(try await withDeadline { await done.wait() } == true)
        #expect(try await withDeadline { await watch.wait() } == .exited(status: 0))
        let expected = (0..<2000).map { "line\($0)\n" }.joined()
        #expect(received.withLock { String(decoding: $0, as: UTF8.self) } == expected)
    }

    @Test func pausedReaderResumesWithoutLosingBytes() async throws {
        let reactor = try Reactor.shared()
        let pipe = try PipePair()
        let payload = [UInt8]((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let received = Mutex<[UInt8]>([])
        let pauses = Mutex(0)
        let done = OneShot<Bool>()
        let paused = OneShot<Bool>()
        let registration = try reactor.read(try pipe.readEnd.duplicate(), chunkSize: 4096) { event in
            switch event {
            case .data(let bytes):
                received.withLock { $0.append(contentsOf: bytes) }
                let first = pauses.withLock { p in
                    p += 1
                    return p == 1
                }
                if first {
                    paused.set(true)
                    return .pause
                }
            case .endOfFile: done.set(true)
            case .failed: done.set(false)
            }
            return .proceed
        }
        let writer = try pipe.writeEnd.duplicate()
        _ = consume pipe
        let writerDone = OneShot<Bool>()
        let write = { @Sendable (fd: Int32) in
            var offset = 0
            while offset < payload.count {
                let n = payload[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                offset += n
            }
            writerDone.set(offset == payload.count)
        }
        let raw = writer.take()
        let thread = TestThread { write(raw); close(raw) }
        thread.start()
        #expect(try await withDeadline { await paused.wait() } == true)
        registration.resume()
        #expect(try await withDeadline { await writerDone.wait() } == true)
        #expect(try await withDeadline { await done.wait() } == true)
        #expect(received.withLock { $0 } == payload)
    }
}

/// A plain pthread for blocking work in tests (never the cooperative pool).
final class TestThread: Sendable {
    private let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }

    func start() {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<TestThread>.fromOpaque(raw).takeRetainedValue().body()
            return nil
        }, context)
        if rc == 0 { pthread_detach(thread) } else { Unmanaged<TestThread>.fromOpaque(context).release() }
    }
}
