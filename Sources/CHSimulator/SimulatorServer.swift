import CShims
import LinuxSys
import NIOCore
import NIOEmbedded
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#endif

/// The simulator process: serves cloud-hypervisor's REST API on the API socket with NIO's HTTP
/// codec over its own socket I/O (so descriptors passed with `SCM_RIGHTS` are received), one
/// thread, `poll(2)` over the listener and its connections. Never returns: the process ends
/// with `vmm.shutdown`, a guest power-off or an injected crash.
public final class SimulatorServer {
    /// The largest request accepted.
    static let maxRequestBytes = 1 << 20

    private let options: SimulatorOptions
    private var router: APIRouter
    private let listener: LinuxSys.FileDescriptor
    private let listenerPath: String?
    private let events: EventMonitor
    private let log: SimLog
    private var connections: [Int32: Connection] = [:]
    private var serial: SerialPort = .discard
    private var pendingSerial: [UInt8] = []
    private var poweredOff = false
    /// TAP descriptors handed over with vm.add-net: the VMM keeps them for its lifetime.
    private var heldDescriptors: [Int32] = []

    private final class Connection {
        let socket: LinuxSys.FileDescriptor
        var fd: Int32 { socket.rawValue }
        let channel: EmbeddedChannel
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        var descriptors = ReceivedDescriptors([])
        var received = 0

        init(socket: consuming LinuxSys.FileDescriptor) throws {
            self.socket = socket
            channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
            // Framing headers are set by hand, as the real VMM sends them (none on 204).
            var encoder = HTTPResponseEncoder.Configuration()
            encoder.automaticallySetFramingHeaders = false
            try channel.pipeline.syncOperations.addHandler(HTTPResponseEncoder(configuration: encoder))
        }
    }

    /// Opens the API socket and event monitor the options name; the log goes to `--log-file` or stderr.
    public init(options: SimulatorOptions, validator: @escaping BodyValidator = DefaultBodyValidator.validate) throws {
        self.options = options
        router = APIRouter(validator: validator)
        var logFD = STDERR_FILENO
        if let path = options.logFile {
            logFD = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            if logFD < 0 { throw SystemError("open log file \(path)", errno: errno) }
        }
        log = SimLog(fd: logFD, verbosity: options.verbosity)
        switch options.apiSocket {
        case .fd(let fd):
            listener = LinuxSys.FileDescriptor(adopting: fd)
            listenerPath = nil
        case .path(let path):
            listener = try UnixSocket.listen(path: path)
            listenerPath = path
        case nil:
            throw SimOptionsError("--api-socket is required (the simulator only serves the REST API)")
        }
        var eventFD: Int32?
        switch options.eventMonitor {
        case .fd(let fd): eventFD = fd
        case .path(let path):
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
            if fd < 0 { throw SystemError("open event monitor \(path)", errno: errno) }
            eventFD = fd
        case nil: eventFD = nil
        }
        events = EventMonitor(fd: eventFD, start: .now)
    }

    public func run() -> Never {
        signal(SIGPIPE, SIG_IGN)
        log.debug("serving the API (seccomp=\(options.seccomp), ignored flags: \(options.ignored))")
        events.emit(.init(source: "vmm", event: "starting"))
        while true {
            var fds = [pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0)]
            if case .socket(let serialListener, _) = serial {
                fds.append(pollfd(fd: serialListener, events: Int16(POLLIN), revents: 0))
            }
            for fd in connections.keys.sorted() { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                fail("poll: errno \(errno)")
            }
            for p in fds where p.revents != 0 {
                if p.fd == listener.rawValue {
                    acceptConnection()
                } else if case .socket(let serialListener, _) = serial, p.fd == serialListener {
                    acceptSerialClient(serialListener)
                } else {
                    serve(p.fd)
                }
            }
        }
    }

    // MARK: connections

    private func acceptConnection() {
        guard let socket = try? UnixSocket.accept(listener) else { return }
        let fd = socket.rawValue
        if let connection = try? Connection(socket: socket) { connections[fd] = connection }
    }

    /// Drops the connection; its socket closes with it.
    private func closeConnection(_ fd: Int32) {
        if let connection = connections.removeValue(forKey: fd) {
            _ = try? connection.channel.finish()
        }
    }

    private func serve(_ fd: Int32) {
        guard let connection = connections[fd] else { return }
        var chunk: UnixSocket.Received
        do {
            chunk = try UnixSocket.receive(connection.socket)
        } catch {
            return closeConnection(fd)
        }
        if chunk.bytes.isEmpty { return closeConnection(fd) }
        connection.received += chunk.bytes.count
        connection.descriptors.append(chunk.takeDescriptors())
        if connection.received > Self.maxRequestBytes {
            respond(connection, status: 400, body: Self.chain(["Request too large"]))
            return closeConnection(fd)
        }
        do {
            try connection.channel.writeInbound(ByteBuffer(bytes: chunk.bytes))
            while let part = try connection.channel.readInbound(as: HTTPServerRequestPart.self) {
                switch part {
                case .head(let head):
                    connection.head = head
                    connection.body = []
                case .body(let buffer):
                    connection.body.append(contentsOf: buffer.readableBytesView)
                case .end:
                    if let head = connection.head { handle(head, connection) }
                    connection.head = nil
                    connection.body = []
                    connection.received = 0
                }
            }
        } catch {
            log.debug("malformed HTTP request: \(error)")
            respond(connection, status: 400, body: Self.chain(["Malformed HTTP request"]))
            closeConnection(fd)
        }
    }

    // MARK: requests

    private func handle(_ head: HTTPRequestHead, _ connection: Connection) {
        var descriptors = ReceivedDescriptors([])
        swap(&descriptors, &connection.descriptors)
        let call = head.uri.hasPrefix("/api/v1/") ? String(head.uri.dropFirst("/api/v1/".count)) : head.uri
        log.debug("\(head.method) \(call) (\(connection.body.count) bytes, \(descriptors.count) fds)")

        if poweredOff {
            // A request racing the guest power-off: the VMM thread is gone.
            respond(connection, status: 500, body: Self.chain(["Error from API", "API response receive error", "receiving on a closed channel"]))
            finish(status: 0)
        }
        let faults = options.faults
        if let slow = faults.slow { sleep(for: slow) }
        if faults.crashAt.contains(call) {
            log.info("injected fault: crash at \(call)")
            kill(getpid(), SIGKILL)
        }
        if faults.hangAt.contains(call) {
            log.info("injected fault: hang at \(call)")
            while true { pause() }
        }
        if faults.http500At.contains(call) {
            return respond(connection, status: 500, body: Self.chain(["Error from API", "Injected fault", "ch-sim --sim-fault http500-at=\(call)"]))
        }
        if faults.oversizeAt.contains(call) {
            return respond(connection, status: 200, body: Self.oversizedBody(faults.oversizeBytes))
        }

        let reply = router.route(isGet: head.method == .GET, call: call, body: connection.body, descriptors: descriptors.rawValues)
        if !descriptors.isEmpty {
            log.debug("\(call): received descriptors \(descriptors.rawValues)")
            if call == "vm.add-net", reply.status == 200 || reply.status == 204 { heldDescriptors += descriptors.take() }
        }
        if call == "vm.boot", reply.status == 204 {
            serial = SerialPort.open(config: router.vmm.config?["serial"], log: log)
        }
        for event in reply.events { events.emit(event) }
        respond(connection, status: reply.status, body: reply.body)
        for line in reply.serialOutput { writeSerial(Array(line.utf8)) }

        switch reply.afterward {
        case .none: break
        case .exitProcess: finish(status: 0)
        case .guestPowerOff:
            log.info("guest powered off")
            for event in router.vmm.guestPowerOff() { events.emit(event) }
            if faults.closedChannelAfterPoweroff {
                poweredOff = true
            } else {
                finish(status: 0)
            }
        }
    }

    private func respond(_ connection: Connection, status: Int, body: [UInt8]) {
        // The real VMM's status line has no reason phrase: "HTTP/1.1 200 ".
        var head = HTTPResponseHead(version: .http1_1, status: .custom(code: UInt(status), reasonPhrase: ""))
        head.headers.add(name: "Server", value: "Cloud Hypervisor API")
        head.headers.add(name: "Connection", value: "keep-alive")
        if status != 204 {
            if !body.isEmpty { head.headers.add(name: "Content-Type", value: "application/json") }
            head.headers.add(name: "Content-Length", value: String(body.count))
        }
        var wire: [UInt8] = []
        do {
            try connection.channel.writeOutbound(HTTPServerResponsePart.head(head))
            if !body.isEmpty {
                try connection.channel.writeOutbound(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: body))))
            }
            try connection.channel.writeOutbound(HTTPServerResponsePart.end(nil))
            while let buffer = try connection.channel.readOutbound(as: ByteBuffer.self) {
                wire.append(contentsOf: buffer.readableBytesView)
            }
        } catch {
            log.info("cannot encode the answer: \(error)")
            return
        }
        writeAll(connection.fd, wire)
    }

    // MARK: guest serial port

    private func writeSerial(_ bytes: [UInt8]) {
        switch serial {
        case .discard: break
        case .descriptor(let fd): writeAll(fd, bytes)
        case .socket: pendingSerial += bytes
        }
    }

    private func acceptSerialClient(_ serialListener: Int32) {
        let fd = qx_unix_accept(serialListener)
        guard fd >= 0 else { return }
        writeAll(fd, pendingSerial)
        pendingSerial = []
        serial = .descriptor(fd)
        close(serialListener)
    }

    // MARK: ending

    private func finish(status: Int32) -> Never {
        if let listenerPath { unlink(listenerPath) }
        if case .socket(_, let path) = serial { unlink(path) }
        exit(status)
    }

    private func fail(_ message: String) -> Never {
        log.info(message)
        exit(1)
    }

    static func chain(_ items: [String]) -> [UInt8] { APIRouter.chain(items) }

    static func oversizedBody(_ bytes: Int) -> [UInt8] {
        // A JSON array holding one long string: valid JSON, just too big.
        Array("[\"".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: max(0, bytes - 4)) + Array("\"]".utf8)
    }

    private func sleep(for duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) < 0, errno == EINTR { request = remaining }
    }
}
