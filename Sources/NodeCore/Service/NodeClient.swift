public import Foundation
public import LinuxSys
#if canImport(Glibc)
import Glibc
#endif

/// Why a client exchange with the node failed.
public enum NodeClientError: Error, Sendable, CustomStringConvertible {
    /// The node's socket could not be reached.
    case connect(path: String, SystemError)
    case frame(NodeFrameError)
    /// No answer before the deadline.
    case timeout(Duration)
    /// The node closed the connection without answering.
    case closed
    /// The node refused the request.
    case node(NodeServiceError)

    public var description: String {
        switch self {
        case .connect(let path, let error):
            "cannot reach the node at \(path): \(error) (is `qarax-node serve` running, and are you root?)"
        case .frame(let error): "node protocol: \(error)"
        case .timeout(let limit): "no answer from the node within \(limit)"
        case .closed: "the node closed the connection without answering"
        case .node(let error): error.description
        }
    }
}

/// A blocking client of the node daemon's local socket (``NodeProtocol``): one request per
/// connection. For command-line tools and tests; call it from a thread that may block.
public struct NodeClient: Sendable {
    public let socketPath: String

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// Sends `request` and returns the node's answer; `timeout` bounds the wait for it.
    public func send(_ request: NodeRequest, timeout: Duration? = nil) throws(NodeClientError) -> NodeResponse {
        let connection = try connect()
        try write(connection, request)
        return try readResponse(connection, timeout: timeout)
    }

    /// Follows the console of `name` from `offset`: `onChunk` gets each new piece of the log and
    /// returns whether to go on. Ends when `onChunk` says stop, the node ends the stream (the VM was
    /// deleted: its error is thrown), or `deadline` passes (``NodeClientError/timeout(_:)``).
    public func followConsole(name: String, offset: Int64 = 0, deadline: ContinuousClock.Instant? = nil,
                              _ onChunk: (Data) -> Bool) throws(NodeClientError) {
        let connection = try connect()
        try write(connection, .console(name: name, offset: offset, follow: true))
        while true {
            var remaining: Duration?
            if let deadline {
                remaining = deadline - .now
                if let left = remaining, left <= .zero { throw .timeout(.zero) }
            }
            let response = try readResponse(connection, timeout: remaining)
            switch response {
            case .console(_, _, let bytes):
                if !onChunk(bytes) { return }
            case .error(let error):
                throw .node(error)
            default:
                throw .frame(.decoding("unexpected answer to a console request"))
            }
        }
    }

    private func connect() throws(NodeClientError) -> FileDescriptor {
        do {
            return try UnixSocket.connect(path: socketPath, timeout: .seconds(10))
        } catch {
            throw .connect(path: socketPath, error)
        }
    }

    private func write(_ connection: borrowing FileDescriptor, _ request: NodeRequest) throws(NodeClientError) {
        do {
            try FrameIO.write(connection, try NodeProtocol.frame(request))
        } catch {
            throw .frame(error)
        }
    }

    private func readResponse(_ connection: borrowing FileDescriptor, timeout: Duration?) throws(NodeClientError) -> NodeResponse {
        FrameIO.setReceiveTimeout(connection, timeout)
        do {
            guard let body = try FrameIO.readFrame(connection) else { throw NodeClientError.closed }
            return try NodeProtocol.decode(NodeResponse.self, body: body)
        } catch let error as NodeClientError {
            throw error
        } catch let error as NodeFrameError {
            if FrameIO.isTimeout(error) { throw .timeout(timeout ?? .zero) }
            throw .frame(error)
        } catch {
            throw .closed
        }
    }
}
