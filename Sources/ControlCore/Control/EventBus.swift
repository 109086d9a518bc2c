import Synchronization

/// Fans committed audit events out to live subscribers (the SSE endpoint). Each subscriber has a
/// bounded buffer: a subscriber too slow to keep up loses the oldest events, never the daemon's memory.
public final class EventBus: Sendable {
    private let subscribers = Mutex<[Int: AsyncStream<EventRecord>.Continuation]>([:])
    private let nextID = Mutex(0)
    public static let bufferLimit = 256

    public init() {}

    /// A stream of events published from now on; it ends when the consumer stops iterating.
    public func subscribe() -> AsyncStream<EventRecord> {
        let id = nextID.withLock { value in
            value += 1
            return value
        }
        let (stream, continuation) = AsyncStream.makeStream(of: EventRecord.self,
                                                            bufferingPolicy: .bufferingNewest(Self.bufferLimit))
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        subscribers.withLock { $0[id] = continuation }
        return stream
    }

    public func publish(_ events: [EventRecord]) {
        let targets = subscribers.withLock { Array($0.values) }
        for continuation in targets {
            for event in events { continuation.yield(event) }
        }
    }

    public var subscriberCount: Int { subscribers.withLock { $0.count } }
}
