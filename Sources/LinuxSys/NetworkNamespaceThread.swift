import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A namespace's identity as the kernel sees it: the nsfs device and inode.
struct NamespaceKey: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64
}

/// One dedicated thread per network namespace, created on first use and kept.
final class NamespaceThreads: Sendable {
    static let shared = NamespaceThreads()

    private struct Registry {
        var threads: [NamespaceKey: NamespaceThread] = [:]
        /// Which namespace each path named when last used; a path that now names another one
        /// (deleted and recreated outside qarax) retires the old thread.
        var paths: [String: NamespaceKey] = [:]
    }

    private let registry = Mutex(Registry())
    private let ownKey: NamespaceKey?

    private init() {
        ownKey = try? Self.key(ofPath: "/proc/self/ns/net")
    }

    /// The thread serving `namespace`, started if needed. Opening the namespace file here (a
    /// quick open/fstat) makes a missing namespace fail at once with a precise error.
    func thread(for namespace: NetworkNamespace) throws(NetworkNamespaceError) -> NamespaceThread {
        if case let .named(name) = namespace.location, let reason = NetworkNamespace.problem(withName: name) {
            throw .invalidName(name, reason: reason)
        }
        let path = namespace.filePath
        // Fast path: one stat() tells whether the path still names the namespace we serve.
        var st = stat()
        if stat(path, &st) == 0 {
            let key = NamespaceKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            let known = registry.withLock { r in r.paths[path] == key ? r.threads[key] : nil }
            if let known, known.isServing { return known }
        }
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, O_RDONLY)
        } catch {
            if error.errno == ENOENT {
                retire(path: path)
                throw .notFound(namespace)
            }
            throw .system(error)
        }
        let key = try Self.key(of: fd.rawValue, path: path)
        let own = key == ownKey
        let (existing, stale) = registry.withLock { r -> (NamespaceThread?, NamespaceThread?) in
            var stale: NamespaceThread?
            if let previous = r.paths[path], previous != key {
                stale = r.threads.removeValue(forKey: previous)
            }
            r.paths[path] = key
            return (r.threads[key], stale)
        }
        stale?.stop()
        if let existing, existing.isServing { return existing }
        let raw = fd.take()
        if own { _ = Glibc.close(raw) }
        let thread = NamespaceThread(namespace: namespace, key: key, enter: own ? nil : raw, registry: self)
        let winner = registry.withLock { r -> NamespaceThread in
            if let other = r.threads[key], other.isServing { return other }
            r.threads[key] = thread
            return thread
        }
        if winner !== thread { thread.stop() }
        return winner
    }

    /// Stops the thread of the namespace `path` names (or last named), if any; queued jobs still run.
    func retire(path: String) {
        let current = try? Self.key(ofPath: path)
        let threads = registry.withLock { r -> [NamespaceThread] in
            let keys = Set([current, r.paths.removeValue(forKey: path)].compactMap { $0 })
            return keys.compactMap { r.threads.removeValue(forKey: $0) }
        }
        for thread in threads { thread.stop() }
    }

    /// Forgets `thread` (it failed to enter its namespace).
    func remove(_ thread: NamespaceThread) {
        registry.withLock { r in
            if r.threads[thread.key] === thread { r.threads[thread.key] = nil }
        }
    }

    static func key(ofPath path: String) throws(NetworkNamespaceError) -> NamespaceKey {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, O_RDONLY) } catch { throw .system(error) }
        return try key(of: fd.rawValue, path: path)
    }

    private static func key(of fd: Int32, path: String) throws(NetworkNamespaceError) -> NamespaceKey {
        var st = stat()
        if fstat(fd, &st) < 0 { throw .system(SystemError("fstat \(path)", errno: errno)) }
        return NamespaceKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}

/// A pthread that entered one network namespace and runs jobs from a queue, one at a time.
// @unchecked Sendable: `wakeup` is a POSIX semaphore (thread-safe by contract); all other mutable
// state is inside the Mutex.
final class NamespaceThread: @unchecked Sendable {
    typealias Job = @Sendable (NetworkNamespaceError?) -> Void

    private struct State {
        var jobs: [Job] = []
        var head = 0
        var stopping = false
        var setupError: NetworkNamespaceError?
    }

    let namespace: NetworkNamespace
    let key: NamespaceKey
    private let state = Mutex(State())
    private let wakeup: UnsafeMutablePointer<sem_t>
    private let registry: NamespaceThreads

    /// `enter`: an open namespace fd to `setns` into (and then mount a private sysfs), or nil to
    /// stay in the process's namespace.
    init(namespace: NetworkNamespace, key: NamespaceKey, enter: Int32?, registry: NamespaceThreads) {
        self.namespace = namespace
        self.key = key
        self.registry = registry
        wakeup = .allocate(capacity: 1)
        sem_init(wakeup, 0, 0)
        start(enter: enter)
    }

    deinit {
        sem_destroy(wakeup)
        wakeup.deallocate()
    }

    var isServing: Bool { state.withLock { !$0.stopping && $0.setupError == nil } }

    /// Queues `job`; it runs on the thread with the setup error (nil when the namespace was entered).
    func enqueue(_ job: @escaping Job) {
        let refused: NetworkNamespaceError? = state.withLock { state in
            if let error = state.setupError { return error }
            if state.stopping { return .notFound(namespace) }
            state.jobs.append(job)
            return nil
        }
        if let refused {
            job(refused)
            return
        }
        sem_post(wakeup)
    }

    func stop() {
        state.withLock { $0.stopping = true }
        sem_post(wakeup)
    }

    private func start(enter: Int32?) {
        let box = Unmanaged.passRetained(StartBox(thread: self, enter: enter)).toOpaque()
        var tid = pthread_t()
        let r = pthread_create(&tid, nil, { raw in
            guard let raw else { return nil }
            let box = Unmanaged<StartBox>.fromOpaque(raw).takeRetainedValue()
            box.thread.main(enter: box.enter)
            return nil
        }, box)
        if r != 0 {
            Unmanaged<StartBox>.fromOpaque(box).release()
            if let enter { _ = Glibc.close(enter) }
            fail(.system(SystemError("pthread_create for \(namespace)", errno: r)))
            return
        }
        pthread_detach(tid)
    }

    private func main(enter: Int32?) {
        if let enter {
            let r = qx_setns(enter, qx_clone_newnet())
            _ = Glibc.close(enter)
            if r < 0 {
                fail(-r == EINVAL ? .notANetworkNamespace(namespace)
                    : .system(SystemError("setns(CLONE_NEWNET) \(namespace.filePath)", negated: r)))
                return
            }
            let m = qx_private_sysfs()
            if m < 0 {
                fail(.system(SystemError("mount a private sysfs for \(namespace)", negated: m)))
                return
            }
        }
        while true {
            while sem_wait(wakeup) != 0 {}
            let next: Job? = state.withLock { state in
                if state.head < state.jobs.count {
                    let job = state.jobs[state.head]
                    state.head += 1
                    if state.head > 64 && state.head * 2 > state.jobs.count {
                        state.jobs.removeFirst(state.head)
                        state.head = 0
                    }
                    return job
                }
                return nil
            }
            if let next {
                next(nil)
                continue
            }
            if state.withLock({ $0.stopping && $0.head >= $0.jobs.count }) { return }
        }
    }

    /// Fails every queued and future job with `error` and leaves the registry.
    private func fail(_ error: NetworkNamespaceError) {
        let pending: [Job] = state.withLock { state in
            state.setupError = error
            let jobs = Array(state.jobs[state.head...])
            state.jobs = []
            state.head = 0
            return jobs
        }
        registry.remove(self)
        for job in pending { job(error) }
    }
}

private final class StartBox {
    let thread: NamespaceThread
    let enter: Int32?
    init(thread: NamespaceThread, enter: Int32?) {
        self.thread = thread
        self.enter = enter
    }
}
