#if canImport(Glibc)
import Glibc
#endif
public import LinuxSys
import Foundation
import Synchronization

/// A QMP client on a Unix stream socket: capability negotiation, commands matched to their replies
/// by `id`, and QEMU's asynchronous events as a typed stream.
///
/// All socket I/O happens on one dedicated thread per client (`poll` on the socket and a wake-up
/// socket pair), never on Swift's cooperative pool. Commands may be issued concurrently; QEMU
/// answers them in order. When the connection ends (QEMU exits, or ``close()``), waiting commands
/// fail with ``QMPError/disconnected`` and ``events`` finishes.
public final class QMPClient: Sendable {
    /// Events kept for a slow consumer; past that the oldest are dropped (QEMU emits a handful
    /// per state change).
    public static let eventBufferLimit = 1024

    /// QEMU's events, in arrival order. One consumer.
    public let events: AsyncStream<QMPEvent>
    /// The greeting QEMU sent on connect.
    public let greeting: QMPGreeting
    private let connection: QMPConnection

    private init(connection: QMPConnection, greeting: QMPGreeting, events: AsyncStream<QMPEvent>) {
        self.connection = connection
        self.greeting = greeting
        self.events = events
    }

    /// Connects to the QMP socket at `path`, reads the greeting and negotiates capabilities (none
    /// enabled), ready for commands. QEMU serves one QMP client per monitor at a time; a second
    /// connection waits for the greeting until the first closes. Cancelling the task while it
    /// waits for the greeting fails with ``QMPError/cancelled``.
    public static func connect(socketPath path: String) async throws(QMPError) -> QMPClient {
        try await start(QMPConnection.Endpoint.path(path))
    }

    /// Takes over a connected stream socket (e.g. one end of a socket pair, or a connection made by
    /// the node), then negotiates as ``connect(socketPath:)``.
    public static func negotiate(adopting socket: consuming FileDescriptor) async throws(QMPError) -> QMPClient {
        try await start(.connected(socket.take()))
    }

    private static func start(_ endpoint: QMPConnection.Endpoint) async throws(QMPError) -> QMPClient {
        let (events, eventSink) = AsyncStream.makeStream(of: QMPEvent.self,
                                                         bufferingPolicy: .bufferingNewest(eventBufferLimit))
        let connection: QMPConnection
        do {
            connection = try QMPConnection(endpoint: endpoint, events: eventSink)
        } catch {
            eventSink.finish()
            throw .system(error)
        }
        let greetingValue = try await connection.awaitGreeting()
        let greeting: QMPGreeting
        do {
            greeting = try QMPGreeting(greetingValue)
            _ = try await connection.execute("qmp_capabilities", arguments: nil)
        } catch {
            connection.close()
            throw error
        }
        return QMPClient(connection: connection, greeting: greeting, events: events)
    }

    deinit {
        connection.close()
    }

    /// Runs `command` with `arguments` and returns its `return` value.
    @discardableResult
    public func execute(_ command: String, arguments: [String: QMPValue]? = nil) async throws(QMPError) -> QMPValue {
        try await connection.execute(command, arguments: arguments)
    }

    /// `query-status`: whether vCPUs run, and QEMU's run state.
    public func queryStatus() async throws(QMPError) -> QMPStatus {
        try QMPStatus(try await execute("query-status"))
    }

    /// `query-version`.
    public func queryVersion() async throws(QMPError) -> QMPVersion {
        try QMPVersion(try await execute("query-version"))
    }

    /// `stop`: pauses the vCPUs (a `STOP` event follows).
    public func stop() async throws(QMPError) { try await execute("stop") }

    /// `cont`: resumes the vCPUs (a `RESUME` event follows).
    public func cont() async throws(QMPError) { try await execute("cont") }

    /// `system_powerdown`: presses the ACPI power button (a `POWERDOWN` event follows; the guest
    /// decides whether to shut down).
    public func systemPowerdown() async throws(QMPError) { try await execute("system_powerdown") }

    /// `system_reset`: resets the machine (a `RESET` event follows).
    public func systemReset() async throws(QMPError) { try await execute("system_reset") }

    /// `quit`: QEMU exits after replying (a `SHUTDOWN` event with reason `host-qmp-quit` precedes
    /// the end of the connection).
    public func quit() async throws(QMPError) { try await execute("quit") }

    /// `device_add` of `driver` with id `id` and further properties (e.g. `bus`, `netdev`).
    public func deviceAdd(driver: String, id: String, properties: [String: QMPValue] = [:]) async throws(QMPError) {
        var arguments = properties
        arguments["driver"] = .string(driver)
        arguments["id"] = .string(id)
        try await execute("device_add", arguments: arguments)
    }

    /// `device_del`: asks the guest to release device `id`; `DEVICE_DELETED` arrives when it has.
    public func deviceDel(id: String) async throws(QMPError) {
        try await execute("device_del", arguments: ["id": .string(id)])
    }

    /// Closes the connection; idempotent. Waiting commands fail with ``QMPError/disconnected``.
    public func close() {
        connection.close()
    }
}

/// The connection's state and its I/O thread.
///
/// `@unchecked Sendable`: the socket numbers are immutable and only the I/O thread reads, writes or
/// closes them; everything shared lives in `state` behind its mutex; the wake socket is written
/// from any thread (a one-byte, non-blocking send).
final class QMPConnection: @unchecked Sendable {
    enum Endpoint {
        case path(String)
        case connected(Int32)
    }

    private struct State: ~Copyable {
        var outbox: [UInt8] = []
        var pending: [Int64: Pending] = [:]
        var nextID: Int64 = 1
        var greeting: QMPValue?
        var greetingWaiter: CheckedContinuation<Result<QMPValue, QMPError>, Never>?
        /// Set once: why the connection ended.
        var ended: QMPError?
        var closeRequested = false
    }

    private struct Pending {
        let command: String
        let continuation: CheckedContinuation<Result<QMPValue, QMPError>, Never>
    }

    private let state = Mutex(State())
    private let wakeReader: Int32
    private let wakeWriter: Int32
    private let events: AsyncStream<QMPEvent>.Continuation
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    init(endpoint: Endpoint, events: AsyncStream<QMPEvent>.Continuation) throws(SystemError) {
        let pair: (reader: Int32, writer: Int32)
        do {
            pair = try QMPSocket.wakePair()
        } catch {
            if case .connected(let fd) = endpoint { _ = Glibc.close(fd) }
            throw error
        }
        wakeReader = pair.reader
        wakeWriter = pair.writer
        self.events = events
        let thread = Thread { [self] in self.run(endpoint) }
        thread.name = "qmp-io"
        thread.start()
    }

    deinit {
        _ = Glibc.close(wakeWriter)
    }

    /// Waits for QEMU's greeting; cancelling the task closes the connection.
    func awaitGreeting() async throws(QMPError) -> QMPValue {
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<QMPValue, QMPError>, Never>) in
                let immediate: Result<QMPValue, QMPError>? = state.withLock { state in
                    if let greeting = state.greeting { return .success(greeting) }
                    // Before `ended`: a cancellation that came first has already closed the connection.
                    if Task.isCancelled { return .failure(.cancelled) }
                    if let ended = state.ended { return .failure(ended) }
                    state.greetingWaiter = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.greetingWaiter = nil }
                return state.greetingWaiter
            }
            waiter?.resume(returning: .failure(.cancelled))
            close()
        }
        if case .failure = result { close() }
        return try result.get()
    }

    func execute(_ command: String, arguments: [String: QMPValue]?) async throws(QMPError) -> QMPValue {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        var message: [String: QMPValue] = ["execute": .string(command), "id": .int(id)]
        if let arguments { message["arguments"] = .object(arguments) }
        let line: Data
        do {
            line = try encoder.encode(message) + Data("\r\n".utf8)
        } catch {
            throw .malformed("cannot encode \(command): \(error)")
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<QMPValue, QMPError>, Never>) in
                let refused: QMPError? = state.withLock { state in
                    if let ended = state.ended { return ended }
                    if Task.isCancelled { return .cancelled }
                    state.pending[id] = Pending(command: command, continuation: continuation)
                    state.outbox.append(contentsOf: line)
                    return nil
                }
                if let refused {
                    continuation.resume(returning: .failure(refused))
                } else {
                    wake()
                }
            }
        } onCancel: {
            let pending = state.withLock { $0.pending.removeValue(forKey: id) }
            pending?.continuation.resume(returning: .failure(.cancelled))
        }
        return try result.get()
    }

    func close() {
        let first = state.withLock { state in
            defer { state.closeRequested = true }
            return !state.closeRequested
        }
        if first { wake() }
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = send(wakeWriter, &byte, 1, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
    }

    // MARK: The I/O thread

    private func run(_ endpoint: Endpoint) {
        var socketFD: Int32 = -1
        let ending: QMPError
        do throws(QMPError) {
            switch endpoint {
            case .connected(let fd):
                socketFD = fd
            case .path(let path):
                do {
                    socketFD = try QMPSocket.connect(path: path).take()
                } catch {
                    throw .system(error)
                }
            }
            do {
                try QMPSocket.setNonBlocking(socketFD)
            } catch {
                throw .system(error)
            }
            try loop(socketFD)
            ending = .disconnected
        } catch {
            ending = error
        }
        if socketFD >= 0 { _ = Glibc.close(socketFD) }
        _ = Glibc.close(wakeReader)
        finish(ending)
    }

    /// Runs until the peer closes (returns), ``close()`` is called (returns) or an error (throws).
    private func loop(_ fd: Int32) throws(QMPError) {
        var framer = QMPLineFramer()
        var buffer = [UInt8](repeating: 0, count: 65536)
        let decoder = JSONDecoder()
        while true {
            let (wantsWrite, closing) = state.withLock { ($0.outbox.isEmpty == false, $0.closeRequested) }
            if closing { return }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN) | (wantsWrite ? Int16(POLLOUT) : 0), revents: 0),
                       pollfd(fd: wakeReader, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                throw .system(SystemError("poll", errno: errno))
            }
            if fds[1].revents != 0 {
                while recv(wakeReader, &buffer, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
            }
            if fds[0].revents & Int16(POLLOUT) != 0 { try flush(fd) }
            if fds[0].revents & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
                let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if count == 0 { return }
                if count < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    if errno == ECONNRESET { return }
                    throw .system(SystemError("recv(QMP)", errno: errno))
                }
                let lines: [[UInt8]]
                do {
                    lines = try framer.append(buffer[0..<count])
                } catch {
                    throw .lineTooLong(limit: error.limit)
                }
                for line in lines {
                    let value: QMPValue
                    do {
                        value = try decoder.decode(QMPValue.self, from: Data(line))
                    } catch {
                        throw .malformed("not JSON: \(String(decoding: line.prefix(200), as: UTF8.self))")
                    }
                    dispatch(try QMPIncoming(value))
                }
            }
        }
    }

    private func flush(_ fd: Int32) throws(QMPError) {
        let outbox = state.withLock { $0.outbox }
        let written = outbox.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        if written < 0 {
            if errno == EINTR || errno == EAGAIN { return }
            throw .system(SystemError("send(QMP)", errno: errno))
        }
        state.withLock { $0.outbox.removeFirst(written) }
    }

    private func dispatch(_ message: QMPIncoming) {
        switch message {
        case .greeting(let value):
            let waiter = state.withLock { state in
                state.greeting = value
                defer { state.greetingWaiter = nil }
                return state.greetingWaiter
            }
            waiter?.resume(returning: .success(value))
        case .event(let event):
            events.yield(event)
        case .reply(let id, let result):
            // QEMU answers in order; a reply without an id (a request it could not parse) belongs
            // to the oldest command still waiting.
            let pending = state.withLock { state in
                let key = id ?? state.pending.keys.min()
                return key.flatMap { state.pending.removeValue(forKey: $0) }
            }
            guard let pending else { return }
            pending.continuation.resume(returning: result.mapError { error in
                .command(command: pending.command, errorClass: error.errorClass, description: error.description)
            })
        }
    }

    private func finish(_ error: QMPError) {
        let (waiters, greetingWaiter) = state.withLock { state in
            state.ended = error
            let waiters = Array(state.pending.values)
            state.pending.removeAll()
            state.outbox.removeAll()
            defer { state.greetingWaiter = nil }
            return (waiters, state.greetingWaiter)
        }
        greetingWaiter?.resume(returning: .failure(error))
        for waiter in waiters { waiter.continuation.resume(returning: .failure(error)) }
        events.finish()
    }
}
