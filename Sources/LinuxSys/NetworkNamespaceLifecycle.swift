import CShims
#if canImport(Glibc)
import Glibc
#endif

extension NetworkNamespace {
    /// Creates the named namespace `/run/netns/NAME`, as `ip netns add NAME` does: a short-lived
    /// thread unshares a new network namespace and bind-mounts it onto the name.
    public static func create(named name: String) async throws(NetworkNamespaceError) -> NetworkNamespace {
        if let reason = problem(withName: name) { throw .invalidName(name, reason: reason) }
        let namespace = NetworkNamespace.named(name)
        let path = namespace.filePath
        if mkdir(namedDirectory, 0o755) < 0 && errno != EEXIST {
            throw .system(SystemError("mkdir \(namedDirectory)", errno: errno))
        }
        if case let r = qx_make_shared_mountpoint(namedDirectory), r < 0 {
            throw .system(SystemError("make \(namedDirectory) a shared mount", negated: r))
        }
        let placeholder = Glibc.open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
        if placeholder < 0 {
            if errno == EEXIST { throw .alreadyExists(namespace) }
            throw .system(SystemError("create \(path)", errno: errno))
        }
        _ = Glibc.close(placeholder)
        let result: Result<Void, NetworkNamespaceError> = await withCheckedContinuation { continuation in
            let started = OneShotThread.run {
                if case let r = qx_unshare(qx_clone_newnet()), r < 0 {
                    continuation.resume(returning: .failure(.system(SystemError("unshare(CLONE_NEWNET)", negated: r))))
                    return
                }
                if case let r = qx_bind_thread_netns(path), r < 0 {
                    continuation.resume(returning: .failure(.system(SystemError("bind-mount the new namespace on \(path)", negated: r))))
                    return
                }
                continuation.resume(returning: .success(()))
            }
            if let started {
                continuation.resume(returning: .failure(.system(started)))
            }
        }
        if case let .failure(error) = result {
            _ = unlink(path)
            throw error
        }
        return namespace
    }

    /// Removes the named namespace `/run/netns/NAME` (unmount and unlink, as `ip netns delete`).
    /// Its dedicated thread, if any, is stopped; the kernel frees the namespace and its links once
    /// nothing else holds it.
    public static func delete(named name: String) throws(NetworkNamespaceError) {
        if let reason = problem(withName: name) { throw .invalidName(name, reason: reason) }
        let namespace = NetworkNamespace.named(name)
        let path = namespace.filePath
        if access(path, F_OK) < 0 { throw .notFound(namespace) }
        NamespaceThreads.shared.retire(path: path)
        let r = qx_detach_mount(path)
        if r < 0 && -r != EINVAL { throw .system(SystemError("umount \(path)", negated: r)) }
        if unlink(path) < 0 { throw .system(SystemError("unlink \(path)", errno: errno)) }
    }
}

/// Runs a closure once on a new detached pthread (for work that changes the thread's namespaces).
enum OneShotThread {
    /// Returns nil when the thread started, else why not.
    static func run(_ body: @escaping @Sendable () -> Void) -> SystemError? {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var tid = pthread_t()
        let r = pthread_create(&tid, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<Body>.fromOpaque(raw).takeRetainedValue().body()
            return nil
        }, box)
        if r != 0 {
            Unmanaged<Body>.fromOpaque(box).release()
            return SystemError("pthread_create", errno: r)
        }
        pthread_detach(tid)
        return nil
    }

    private final class Body {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
