import Foundation
import VMModel
public import Wire

/// A connected node over the Wire protocol: ``NodeRequest``s become Wire requests, the node's
/// pushed events become ``NodeEvent``s.
public final class WireNodeLink: NodeLink {
    public let hello: NodeHello
    public let events: AsyncStream<NodeEvent>
    /// The Wire connection the link runs on.
    public let connection: WireConnection
    private let callTimeout: Duration?
    private let eventLag: LatencyHistogram?

    private init(hello: NodeHello, events: AsyncStream<NodeEvent>, connection: WireConnection, callTimeout: Duration?,
                 eventLag: LatencyHistogram?) {
        self.hello = hello
        self.events = events
        self.connection = connection
        self.callTimeout = callTimeout
        self.eventLag = eventLag
    }

    /// Accepts a node on an established connection: checks its identity and waits (at most
    /// `reportTimeout`) for the VM inventory report every node sends after its Hello.
    /// - Throws: ``NodeLinkError`` when the peer is not a node, its certificate does not name it,
    ///   or no inventory report arrives in time.
    /// - Parameter eventLag: records each event's lag from the node's send time to its take-up here.
    public static func accept(_ connection: WireConnection, reportTimeout: Duration = .seconds(10),
                              callTimeout: Duration? = nil,
                              eventLag: LatencyHistogram? = nil) async throws(NodeLinkError) -> WireNodeLink {
        let peer = connection.peer
        guard peer.role == .node else { throw .notANode(name: peer.name, role: peer.role.certificateUnit) }
        if let certificate = peer.certificate {
            do {
                try WireHandshake.check(certificate, claims: peer.name, role: .node)
            } catch {
                throw .identity(name: peer.name, reason: error.description)
            }
        }
        guard let wireInventory = peer.node else { throw .noInventory(name: peer.name) }
        let source = WireEventSource(connection.events, lag: eventLag)
        let first = await withTaskGroup(of: WireEvent?.self) { group -> WireEvent? in
            group.addTask {
                try? await Task.sleep(for: reportTimeout)
                if !Task.isCancelled { await connection.close() }
                return nil
            }
            let event = await source.next()
            group.cancelAll()
            return event
        }
        guard let first, case .inventory(let report)? = first.kind else {
            await connection.close()
            throw .noVMReport(name: peer.name, timeout: reportTimeout)
        }
        let hello = NodeHello(name: peer.name, address: Self.address(of: connection),
                              protocolVersion: Int(peer.protocolVersion),
                              inventory: WireNodeMapping.inventory(wireInventory),
                              vms: report.vms.map(WireNodeMapping.reported))
        let events = AsyncStream<NodeEvent>(unfolding: { await source.nextNodeEvent() })
        return WireNodeLink(hello: hello, events: events, connection: connection, callTimeout: callTimeout,
                            eventLag: eventLag)
    }

    private static func address(of connection: WireConnection) -> String {
        guard let remote = connection.remoteAddress else { return "unknown" }
        if let ip = remote.ipAddress, let port = remote.port {
            return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        return remote.description
    }

    public func routeLiveness(to heard: @escaping @Sendable () -> Void) async {
        let lag = eventLag
        await connection.tapEvents { event in
            guard WireNodeMapping.isLivenessOnly(event) else { return false }
            lag?.recordLag(of: event)
            heard()
            return true
        }
    }

    public func call(_ request: NodeRequest) async throws -> NodeReply {
        let wire = try WireNodeMapping.request(request)
        let response: WireResponse
        do {
            response = try await connection.call(wire, timeout: callTimeout)
        } catch let error as WireError {
            throw WireNodeMapping.callError(error)
        }
        return try WireNodeMapping.reply(response, to: request)
    }
}

/// Why a node connection was not accepted.
public enum NodeLinkError: Error, Sendable, Hashable, CustomStringConvertible {
    case notANode(name: String, role: String)
    case identity(name: String, reason: String)
    case noInventory(name: String)
    case noVMReport(name: String, timeout: Duration)

    public var description: String {
        switch self {
        case .notANode(let name, let role): "peer \"\(name)\" is a \(role), not a node"
        case .identity(let name, let reason): "node \"\(name)\": \(reason)"
        case .noInventory(let name): "node \"\(name)\" sent no inventory in its hello"
        case .noVMReport(let name, let timeout): "node \"\(name)\" sent no VM inventory report within \(timeout)"
        }
    }
}

/// The single consumer of a connection's event stream.
// @unchecked: advanced only by the link's one consumer (the accept step, then the unfolding of
// `events`), one awaited step at a time, never concurrently.
private final class WireEventSource: @unchecked Sendable {
    private var iterator: AsyncStream<WireEvent>.Iterator
    private var pending: [NodeEvent] = []
    private let lag: LatencyHistogram?

    init(_ stream: AsyncStream<WireEvent>, lag: LatencyHistogram?) {
        iterator = stream.makeAsyncIterator()
        self.lag = lag
    }

    func next() async -> WireEvent? {
        await iterator.next()
    }

    /// The next node event; one Wire event may stand for several or none. `nil` at the end.
    func nextNodeEvent() async -> NodeEvent? {
        while pending.isEmpty {
            guard let event = await iterator.next() else { return nil }
            lag?.recordLag(of: event)
            pending = WireNodeMapping.events(event)
        }
        return pending.removeFirst()
    }
}

extension LatencyHistogram {
    /// Records how long ago the peer wrote `event` (when it carries its send time).
    func recordLag(of event: WireEvent) {
        guard event.sentUnixNs != 0 else { return }
        record(seconds: (Double(WireClock.unixNanoseconds()) - Double(event.sentUnixNs)) / 1e9)
    }
}
