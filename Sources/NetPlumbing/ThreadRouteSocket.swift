#if canImport(Glibc)
import Glibc
#endif

/// One NETLINK_ROUTE socket per namespace thread, kept between operations and closed when the
/// thread ends (a netlink socket holds its namespace alive, so it must not outlive the thread).
enum ThreadRouteSocket {
    private static let key: pthread_key_t? = {
        var key = pthread_key_t()
        let r = pthread_key_create(&key) { raw in
            if let raw { Unmanaged<RouteSocket>.fromOpaque(raw).release() }
        }
        return r == 0 ? key : nil
    }()

    /// This thread's socket, made on first use.
    static func current(namespace: String) throws(NetPlumbingError) -> RouteSocket {
        guard let key else { return try RouteSocket(namespace: namespace) }
        if let raw = pthread_getspecific(key) {
            return Unmanaged<RouteSocket>.fromOpaque(raw).takeUnretainedValue()
        }
        let socket = try RouteSocket(namespace: namespace)
        if pthread_setspecific(key, Unmanaged.passRetained(socket).toOpaque()) != 0 {
            Unmanaged.passUnretained(socket).release()
        }
        return socket
    }

    /// Drops this thread's socket, e.g. after a failed request that may have left replies unread.
    static func discard() {
        guard let key, let raw = pthread_getspecific(key) else { return }
        _ = pthread_setspecific(key, nil)
        Unmanaged<RouteSocket>.fromOpaque(raw).release()
    }
}
