import Synchronization

extension Reactor {
    /// The bytes of `fd` (e.g. a VMM's event-stream pipe) as an async sequence of chunks.
    ///
    /// At most about `maxBufferedBytes` are held: when the consumer falls behind, the reactor stops
    /// reading this descriptor (so the writer meets a full pipe) until the consumer catches up. The
    /// sequence ends at end-of-file, throws the read error, and ends (closing `fd`) if the consuming
    /// task is cancelled. One consumer.
    public func chunks(
        of fd: consuming FileDescriptor, maxBufferedBytes: Int = 1 << 20
    ) throws(SystemError) -> ByteChunks {
        let chunks = ByteChunks(limit: max(1, maxBufferedBytes))
        let registration = try read(fd, chunkSize: min(64 * 1024, max(1, maxBufferedBytes))) { event in
            chunks.deliver(event)
        }
        chunks.attach(registration)
        return chunks
    }
}

/// See `Reactor.chunks(of:maxBufferedBytes:)`.
public final class ByteChunks: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = SystemError

    private struct State: ~Copyable {
        var chunks: [[UInt8]] = []
        var head = 0
        var bufferedBytes = 0
        var end: SystemError?? = nil
        var paused = false
        var waiter: CheckedContinuation<Result<[UInt8]?, SystemError>, Never>?
        var registration: ReadRegistration?
    }

    private let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    func attach(_ registration: ReadRegistration) {
        state.withLock { $0.registration = registration }
    }

    /// Runs on the reactor thread.
    func deliver(_ event: ReadEvent) -> ReadDisposition {
        let (waiter, result, disposition) = state.withLock { s -> (CheckedContinuation<Result<[UInt8]?, SystemError>, Never>?, Result<[UInt8]?, SystemError>?, ReadDisposition) in
            switch event {
            case .data(let bytes):
                let chunk = [UInt8](bytes)
                if let waiter = s.waiter {
                    s.waiter = nil
                    return (waiter, .success(chunk), .proceed)
                }
                s.chunks.append(chunk)
                s.bufferedBytes += chunk.count
                if s.bufferedBytes >= limit {
                    s.paused = true
                    return (nil, nil, .pause)
                }
                return (nil, nil, .proceed)
            case .endOfFile:
                s.end = .some(nil)
            case .failed(let error):
                s.end = .some(error)
            }
            guard let waiter = s.waiter else { return (nil, nil, .proceed) }
            s.waiter = nil
            return (waiter, Self.endResult(s.end), .proceed)
        }
        if let waiter, let result { waiter.resume(returning: result) }
        return disposition
    }

    private static func endResult(_ end: SystemError??) -> Result<[UInt8]?, SystemError> {
        if case .some(.some(let error)) = end { return .failure(error) }
        return .success(nil)
    }

    fileprivate func next() async throws(SystemError) -> [UInt8]? {
        let result: Result<[UInt8]?, SystemError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let (ready, resume): (Result<[UInt8]?, SystemError>?, ReadRegistration?) = state.withLock { s in
                    if s.head < s.chunks.count {
                        let chunk = s.chunks[s.head]
                        s.head += 1
                        if s.head == s.chunks.count {
                            s.chunks = []
                            s.head = 0
                        }
                        s.bufferedBytes -= chunk.count
                        var resume: ReadRegistration?
                        if s.paused && s.bufferedBytes < limit {
                            s.paused = false
                            resume = s.registration
                        }
                        return (.success(chunk), resume)
                    }
                    if s.end != nil || Task.isCancelled { return (Self.endResult(s.end), nil) }
                    s.waiter = continuation
                    return (nil, nil)
                }
                resume?.resume()
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let (waiter, registration) = state.withLock { s in
                defer { s.waiter = nil }
                if s.end == nil { s.end = .some(nil) }
                return (s.waiter, s.registration)
            }
            registration?.cancel()
            waiter?.resume(returning: .success(nil))
        }
        return try result.get()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let chunks: ByteChunks

        public mutating func next() async throws(SystemError) -> [UInt8]? {
            try await chunks.next()
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(SystemError) -> [UInt8]? {
            try await chunks.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chunks: self) }
}
