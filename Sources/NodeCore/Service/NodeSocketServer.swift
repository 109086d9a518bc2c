import Foundation
public import LinuxSys
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Serves ``NodeService`` on a root-only Unix socket with the interim framed protocol
/// (``NodeProtocol``). Accepting and each connection's blocking reads and writes run on dedicated
/// threads; requests are handled by async code and the connection thread waits for the answer.
public final class NodeSocketServer: Sendable {
    public let path: String
    /// Connections served at once; more are refused with an error frame.
    public static let maxConnections = 64
    /// How long a client may take to send its request.
    public static let requestTimeout: Duration = .seconds(30)

    private let service: NodeService
    private let log: @Sendable (String) -> Void
    private let listener: Int32
    private let active = Mutex(0)
    private let stopped = Mutex(false)
    private let acceptDone = DispatchSemaphore(value: 0)

    /// Binds `path` (a stale socket file there is replaced), mode 0600, and listens. `log` gets one
    /// line per state-changing request and per refusal.
    public init(path: String, service: NodeService, log: @escaping @Sendable (String) -> Void = { _ in }) throws(SystemError) {
        self.path = path
        self.service = service
        self.log = log
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try HostFiles.makeDirectories(directory, mode: 0o755) }
        _ = unlink(path)
        // Connecting needs write permission on the socket file; the daemon's umask (022 or
        // stricter) leaves none to others between the bind and the chmod.
        let socket = try UnixSocket.listen(path: path, backlog: 64)
        guard chmod(path, 0o600) == 0 else {
            let error = SystemError("chmod 0600 \(path)", errno: errno)
            try? socket.close()
            throw error
        }
        listener = socket.take()
    }

    /// Starts accepting on a dedicated thread.
    public func start() {
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "qarax-node-accept"
        thread.start()
    }

    /// Stops accepting, removes the socket file. Connections in flight finish on their threads.
    public func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        _ = unlink(path)
        // Wakes the thread blocked in accept (EINVAL); it then closes the listener.
        _ = shutdown(listener, Int32(SHUT_RDWR))
        acceptDone.wait()
    }

    private func acceptLoop() {
        defer {
            _ = close(listener)
            acceptDone.signal()
        }
        while !stopped.withLock({ $0 }) {
            let borrowed = FileDescriptor(adopting: listener)
            let accepted = Result { () throws(SystemError) -> Int32 in try UnixSocket.accept(borrowed).take() }
            _ = borrowed.take()
            let fd: Int32
            switch accepted {
            case .success(let number): fd = number
            case .failure(let error):
                if [EINTR, ECONNABORTED, EMFILE, ENFILE].contains(error.errno) && !stopped.withLock({ $0 }) { continue }
                return
            }
            let admitted = active.withLock { count in
                guard count < Self.maxConnections else { return false }
                count += 1
                return true
            }
            let thread = Thread { [self] in
                let connection = FileDescriptor(adopting: fd)
                if admitted {
                    serve(connection)
                    active.withLock { $0 -= 1 }
                } else {
                    let refusal = NodeResponse.error(NodeServiceError(code: .internal, message: "the node serves \(Self.maxConnections) connections at once; retry"))
                    if let frame = try? NodeProtocol.frame(refusal) { try? FrameIO.write(connection, frame) }
                }
                try? connection.close()
            }
            thread.name = "qarax-node-conn"
            thread.start()
        }
    }

    private func serve(_ connection: borrowing FileDescriptor) {
        FrameIO.setReceiveTimeout(connection, Self.requestTimeout)
        let request: NodeRequest
        do {
            guard let body = try FrameIO.readFrame(connection) else { return }
            request = try NodeProtocol.decode(NodeRequest.self, body: body)
        } catch {
            reply(connection, .error(NodeServiceError(code: .invalidRequest, message: error.description)))
            return
        }
        let service = self.service
        let clock = ContinuousClock()
        let began = clock.now
        let response = Self.wait { await service.handle(request) }
        if let line = Self.logLine(request, response, elapsed: clock.now - began) { log(line) }
        guard reply(connection, response) else { return }
        if case .console(let name, _, true) = request, case .console(_, let next, _) = response {
            follow(connection, name: name, from: next)
        }
    }

    /// `vm start web1: ok (0.152 s)`, `vm create web1: invalid_spec: …`; nothing for reads that succeeded.
    static func logLine(_ request: NodeRequest, _ response: NodeResponse, elapsed: Duration) -> String? {
        let verb: String
        switch request {
        case .create(let spec): verb = "create \(spec.name)"
        case .start(let name): verb = "start \(name)"
        case .stop(let name): verb = "stop \(name)"
        case .pause(let name): verb = "pause \(name)"
        case .resume(let name): verb = "resume \(name)"
        case .reboot(let name): verb = "reboot \(name)"
        case .powerButton(let name): verb = "power-button \(name)"
        case .delete(let name): verb = "delete \(name)"
        case .info(let name): verb = "info \(name)"
        case .console(let name, _, _): verb = "console \(name)"
        case .list: verb = "list"
        }
        let (seconds, attoseconds) = elapsed.components
        let time = String(format: "%.3f s", Double(seconds) + Double(attoseconds) / 1e18)
        if case .error(let error) = response {
            return "vm \(verb): \(error.code.rawValue): \(error.description.replacingOccurrences(of: "\n", with: "; ")) (\(time))"
        }
        switch request {
        case .info, .list, .console: return nil
        default: return "vm \(verb): ok (\(time))"
        }
    }

    @discardableResult
    private func reply(_ connection: borrowing FileDescriptor, _ response: NodeResponse) -> Bool {
        let frame: [UInt8]
        do {
            frame = try NodeProtocol.frame(response)
        } catch {
            guard let fallback = try? NodeProtocol.frame(NodeResponse.error(NodeServiceError(code: .internal, message: error.description))) else {
                return false
            }
            frame = fallback
        }
        do { try FrameIO.write(connection, frame) } catch { return false }
        return true
    }

    /// Streams the console log as it grows: inotify on the log's directory wakes the thread; the
    /// client closing its end (readable/hang-up on the socket) ends the stream. A one-second
    /// backstop re-reads the log for what inotify cannot see (the directory appearing at start).
    private func follow(_ connection: borrowing FileDescriptor, name: String, from start: Int64) {
        let service = self.service
        guard case .success(let log) = Self.wait({ () async -> Result<String, NodeError> in
            do throws(NodeError) { return .success(try await service.serialLog(of: name)) } catch { return .failure(error) }
        }) else { return }
        let notify = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard notify >= 0 else { return }
        defer { close(notify) }
        var watching = false
        var offset = start
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            if !watching {
                let directory = (log as NSString).deletingLastPathComponent
                watching = inotify_add_watch(notify, directory, UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO)) >= 0
            }
            let from = offset
            let response = Self.wait { () async -> NodeResponse in
                do throws(NodeError) { return try await service.consoleChunk(name: name, offset: from) } catch {
                    return .error(NodeServiceError(error))
                }
            }
            switch response {
            case .console(_, let next, let bytes):
                if !bytes.isEmpty {
                    guard reply(connection, response) else { return }
                    offset = next
                    continue
                }
            default:
                reply(connection, response)
                return
            }
            var fds = [pollfd(fd: notify, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: connection.rawValue, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, 1000)
            if ready < 0 && errno != EINTR { return }
            if fds[1].revents != 0 { return }
            if fds[0].revents & Int16(POLLIN) != 0 {
                while read(notify, &scratch, scratch.count) > 0 {}
            }
        }
    }

    /// Runs `body` on the cooperative pool and blocks this (dedicated) thread until it is done.
    static func wait<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let result = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let value = await body()
            result.withLock { $0 = value }
            done.signal()
        }
        while true {
            done.wait()
            if let value = result.withLock({ $0 }) { return value }
        }
    }
}
