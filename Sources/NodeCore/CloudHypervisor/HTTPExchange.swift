import LinuxSys
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 request and its answer over a fresh Unix-socket connection, run synchronously on
/// the calling (dedicated) thread. The framing is ours (``HTTPRequestBytes``, ``HTTPResponseReader``)
/// as is the socket I/O, so descriptors can ride along with the request, and a call costs no
/// channel pipeline (NIO's codec in an `EmbeddedChannel` was about half of a call's CPU).
enum HTTPExchange {
    struct Request: Sendable {
        var call: String
        var isGet: Bool
        var path: String
        var body: [UInt8]
        var descriptors: [Int32]
        var socketPath: String
        var deadline: ContinuousClock.Instant
        var maxResponseBytes: Int
    }

    /// Lets a task cancel a call blocked on its socket: `shutdown(2)` wakes the thread's poll.
    final class Canceller: Sendable {
        private struct State {
            var fd: Int32?
            var cancelled = false
        }
        // The descriptor is closed only under this lock, so shutdown never hits a reused number.
        private let state = Mutex(State())

        func cancel() {
            state.withLock { s in
                s.cancelled = true
                if let fd = s.fd { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
            }
        }

        var isCancelled: Bool { state.withLock { $0.cancelled } }

        /// Registers the connection; false when the call was already cancelled.
        func attach(_ fd: Int32) -> Bool {
            state.withLock { s in
                if s.cancelled { return false }
                s.fd = fd
                return true
            }
        }

        func close(_ fd: consuming LinuxSys.FileDescriptor) {
            let raw = fd.take()
            state.withLock { s in
                s.fd = nil
                _ = Glibc.close(raw)
            }
        }
    }

    static func run(_ request: Request, canceller: Canceller) -> Result<CHResponse, CHError> {
        let call = request.call
        let socket: LinuxSys.FileDescriptor
        do {
            let remaining = request.deadline - ContinuousClock.now
            if remaining <= .zero { return .failure(.timeout(call: call)) }
            socket = try UnixSocket.connect(path: request.socketPath, timeout: remaining)
        } catch {
            switch error.errno {
            case EAGAIN:
                return .failure(.timeout(call: call))
            case ECONNREFUSED, ENOENT:
                return .failure(.vmmGone(call: call, detail: "nobody listens on \(request.socketPath) (\(error.errnoName))"))
            default:
                return .failure(.transport(call: call, error))
            }
        }
        guard canceller.attach(socket.rawValue) else {
            canceller.close(socket)
            return .failure(.cancelled(call: call))
        }
        let result = exchange(request, on: socket, canceller: canceller)
        canceller.close(socket)
        return result
    }

    private static func exchange(_ request: Request, on socket: borrowing LinuxSys.FileDescriptor,
                                 canceller: Canceller) -> Result<CHResponse, CHError> {
        let call = request.call
        let wire = HTTPRequestBytes.encode(isGet: request.isGet, path: request.path, body: request.body)

        // Send it (descriptors with the first byte); the send timeout bounds a peer that never reads.
        if let failure = setSendTimeout(socket, until: request.deadline, call: call) { return .failure(failure) }
        do {
            try UnixSocket.send(socket, wire, descriptors: request.descriptors)
        } catch {
            if canceller.isCancelled { return .failure(.cancelled(call: call)) }
            switch error.errno {
            case EPIPE, ECONNRESET: return .failure(.vmmGone(call: call, detail: "connection closed while sending (\(error.errnoName))"))
            case EAGAIN: return .failure(.timeout(call: call))
            default: return .failure(.transport(call: call, error))
            }
        }

        // Read and decode the answer.
        var reader = HTTPResponseReader(maxBytes: request.maxResponseBytes)
        var receivedAny = false
        do {
            while true {
                let remaining = request.deadline - ContinuousClock.now
                if remaining <= .zero { return .failure(.timeout(call: call)) }
                var pfd = pollfd(fd: socket.rawValue, events: Int16(POLLIN), revents: 0)
                let ms = Int32(clamping: remaining.components.seconds * 1000
                    + Int64((remaining.components.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000))
                let ready = Glibc.poll(&pfd, 1, max(ms, 1))
                if ready < 0 {
                    if errno == EINTR { continue }
                    return .failure(.transport(call: call, SystemError("poll on the API socket", errno: errno)))
                }
                if ready == 0 { continue }
                if canceller.isCancelled { return .failure(.cancelled(call: call)) }
                let chunk = try UnixSocket.receive(socket, maxBytes: 64 * 1024)
                if chunk.bytes.isEmpty {
                    // End of stream: an answer without Content-Length ends here; otherwise the VMM left.
                    if let response = try reader.endOfStream() { return .success(response) }
                    return .failure(.vmmGone(call: call, detail: receivedAny
                        ? "connection closed in the middle of the answer" : "connection closed before an answer"))
                }
                receivedAny = true
                if let response = try reader.feed(chunk.bytes) { return .success(response) }
            }
        } catch let error as HTTPResponseReader.Failure {
            switch error {
            case .tooLarge: return .failure(.responseTooLarge(call: call, limit: request.maxResponseBytes))
            case .malformed(let reason): return .failure(.malformedResponse(call: call, reason: reason))
            }
        } catch let error as SystemError {
            if canceller.isCancelled { return .failure(.cancelled(call: call)) }
            if error.errno == ECONNRESET {
                return .failure(.vmmGone(call: call, detail: "connection reset (\(error.errnoName))"))
            }
            return .failure(.transport(call: call, error))
        } catch {
            return .failure(.malformedResponse(call: call, reason: "\(error)"))
        }
    }

    private static func setSendTimeout(_ socket: borrowing LinuxSys.FileDescriptor, until deadline: ContinuousClock.Instant,
                                       call: String) -> CHError? {
        let remaining = deadline - ContinuousClock.now
        if remaining <= .zero { return .timeout(call: call) }
        let (seconds, attoseconds) = remaining.components
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int(max(attoseconds / 1_000_000_000_000, 1)))
        let r = setsockopt(socket.rawValue, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        if r < 0 { return .transport(call: call, SystemError("setsockopt(SO_SNDTIMEO)", errno: errno)) }
        return nil
    }
}
