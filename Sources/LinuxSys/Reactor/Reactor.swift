#if canImport(Glibc)
import Glibc
#endif
import CShims
import Synchronization

/// One epoll thread for the whole process, watching pidfds and readable pipes.
///
/// All epoll changes, reads and closes of registered descriptors happen on the reactor thread;
/// other threads only queue commands and wake it through an eventfd. A registered descriptor
/// therefore belongs to the reactor until it is removed, so it can never be closed (and its
/// number reused) while the reactor still polls or reads it.
public final class Reactor: Sendable {
    private let shared: ReactorShared

    /// Starts a reactor with its own thread. Most code uses `Reactor.shared()`.
    public init() throws(SystemError) {
        let epfd = qx_epoll_create()
        if epfd < 0 { throw SystemError("epoll_create1", negated: epfd) }
        let wakefd = qx_eventfd()
        if wakefd < 0 {
            _ = Glibc.close(epfd)
            throw SystemError("eventfd", negated: wakefd)
        }
        let rc = qx_epoll_add(epfd, wakefd, qx_epollin(), ReactorLoop.wakeToken)
        if rc < 0 {
            _ = Glibc.close(epfd)
            _ = Glibc.close(wakefd)
            throw SystemError("epoll_ctl(ADD eventfd)", negated: rc)
        }
        shared = ReactorShared(epollFD: epfd, wakeFD: wakefd)
        let loop = ReactorLoop(shared: shared)
        var thread = pthread_t()
        let context = Unmanaged.passRetained(loop).toOpaque()
        let created = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<ReactorLoop>.fromOpaque(raw).takeRetainedValue().run()
            return nil
        }, context)
        if created != 0 {
            Unmanaged<ReactorLoop>.fromOpaque(context).release()
            _ = Glibc.close(epfd)
            _ = Glibc.close(wakefd)
            throw SystemError("pthread_create(reactor)", errno: created)
        }
        pthread_detach(thread)
    }

    private static let instance = Mutex<Reactor?>(nil)

    /// The process-wide reactor, started on first use.
    public static func shared() throws(SystemError) -> Reactor {
        try instance.withLock { (slot: inout Reactor?) throws(SystemError) -> Reactor in
            if let reactor = slot { return reactor }
            let reactor = try Reactor()
            slot = reactor
            return reactor
        }
    }

    /// Stops the thread; every registered descriptor is closed, pending exit watches end with `nil`,
    /// readers get no further events. Later registrations are refused.
    public func shutdown() {
        _ = shared.submit(.shutdown)
    }

    /// Watches a pidfd (readable once the process has exited). When it fires the reactor reaps the
    /// child with `waitid(P_PIDFD)` and closes the pidfd.
    ///
    /// Takes ownership of `pidfd`. Keep a `duplicate()` if you need to signal the process.
    public func watchExit(of pidfd: consuming FileDescriptor) -> ExitWatch {
        let token = shared.nextToken()
        let watch = ExitWatch(token: token, shared: shared)
        let registration = Registration(token: token, fd: pidfd.take(), kind: .exit(watch))
        if !shared.submit(.add(registration)) {
            registration.closeAndFinish()
        }
        return watch
    }

    /// Reads `fd` (made non-blocking) whenever it is readable, handing each chunk to `handler` on
    /// the reactor thread. The handler must not block. It sees `.data` any number of times, then
    /// exactly one of `.endOfFile` / `.failed` unless the registration is cancelled first; after that
    /// the descriptor is closed. At most `readBudget` bytes are read per wake-up so one busy pipe
    /// cannot starve the others.
    ///
    /// Takes ownership of `fd`.
    public func read(
        _ fd: consuming FileDescriptor,
        chunkSize: Int = 64 * 1024,
        readBudget: Int = 256 * 1024,
        handler: @escaping @Sendable (ReadEvent) -> ReadDisposition
    ) throws(SystemError) -> ReadRegistration {
        let raw = fd.take()
        let flags = fcntl(raw, F_GETFL)
        if flags < 0 || fcntl(raw, F_SETFL, flags | O_NONBLOCK) < 0 {
            let code = Glibc.errno
            _ = Glibc.close(raw)
            throw SystemError("fcntl(O_NONBLOCK) on fd \(raw)", errno: code)
        }
        let token = shared.nextToken()
        let reader = Reader(handler: handler, chunkSize: max(1, chunkSize), budget: max(1, readBudget))
        let registration = Registration(token: token, fd: raw, kind: .read(reader))
        if !shared.submit(.add(registration)) {
            registration.closeAndFinish()
        }
        return ReadRegistration(token: token, shared: shared)
    }
}

/// What a reader's handler sees, on the reactor thread.
public enum ReadEvent {
    /// Bytes read; valid only during the call.
    case data(UnsafeRawBufferPointer)
    /// The writer side closed and everything was read.
    case endOfFile
    /// `read` failed; the registration ends.
    case failed(SystemError)
}

/// What the reactor does next with a reader.
public enum ReadDisposition: Sendable {
    /// Keep reading.
    case proceed
    /// Stop reading (the pipe fills and its writer gets EAGAIN or blocks) until `resume()`.
    case pause
}

/// A live read registration.
public struct ReadRegistration: Sendable {
    let token: UInt64
    let shared: ReactorShared

    /// Resumes reading after the handler answered `.pause`.
    public func resume() { _ = shared.submit(.resume(token)) }

    /// Stops reading and closes the descriptor; the handler gets no further events.
    public func cancel() { _ = shared.submit(.cancel(token)) }
}

/// An exit watch for one process.
public final class ExitWatch: Sendable {
    let token: UInt64
    let shared: ReactorShared
    let outcome = OneShot<ChildExit?>()

    init(token: UInt64, shared: ReactorShared) {
        self.token = token
        self.shared = shared
    }

    /// Waits for the exit. `nil` when the watch was cancelled (or the reactor shut down) before
    /// the process exited, or when the waiting task was cancelled.
    public func wait() async -> ChildExit? {
        (await outcome.wait()) ?? nil
    }

    /// The exit, if already seen.
    public var exit: ChildExit? { outcome.current ?? nil }

    /// Stops watching without touching the process (it is neither signalled nor reaped);
    /// waiters get `nil`.
    public func cancel() { _ = shared.submit(.cancel(token)) }
}

/// State shared between callers and the reactor thread: the command queue and the wake-up fd.
final class ReactorShared: Sendable {
    enum Command {
        case add(Registration)
        case resume(UInt64)
        case cancel(UInt64)
        case shutdown
    }

    struct Queue: ~Copyable {
        var commands: [Command] = []
        var isShutdown = false
    }

    let epollFD: Int32
    let wakeFD: Int32
    let queue = Mutex(Queue())
    private let tokens = Atomic<UInt64>(ReactorLoop.wakeToken)

    init(epollFD: Int32, wakeFD: Int32) {
        self.epollFD = epollFD
        self.wakeFD = wakeFD
    }

    func nextToken() -> UInt64 {
        tokens.add(1, ordering: .relaxed).newValue
    }

    /// Queues a command and wakes the thread; false once the reactor has shut down. The eventfd
    /// is written under the lock, so it is never written after the thread closed it.
    func submit(_ command: Command) -> Bool {
        queue.withLock { q in
            guard !q.isShutdown else { return false }
            if case .shutdown = command { q.isShutdown = true }
            q.commands.append(command)
            _ = qx_eventfd_signal(wakeFD)
            return true
        }
    }

    func takeCommands() -> [Command] {
        queue.withLock { q in
            defer { q.commands = [] }
            return q.commands
        }
    }
}

final class Reader {
    let handler: @Sendable (ReadEvent) -> ReadDisposition
    let chunkSize: Int
    let budget: Int

    init(handler: @escaping @Sendable (ReadEvent) -> ReadDisposition, chunkSize: Int, budget: Int) {
        self.handler = handler
        self.chunkSize = chunkSize
        self.budget = budget
    }
}

// Handed to the reactor thread through the command queue and touched only there afterwards.
final class Registration: @unchecked Sendable {
    enum Kind {
        case exit(ExitWatch)
        case read(Reader)
    }

    let token: UInt64
    let fd: Int32
    let kind: Kind
    var paused = false

    init(token: UInt64, fd: Int32, kind: Kind) {
        self.token = token
        self.fd = fd
        self.kind = kind
    }

    /// Closes the descriptor and ends an exit watch with `nil`; for registrations that never
    /// reached (or are leaving) epoll without an event.
    func closeAndFinish() {
        _ = Glibc.close(fd)
        if case .exit(let watch) = kind { watch.outcome.set(nil) }
    }
}
