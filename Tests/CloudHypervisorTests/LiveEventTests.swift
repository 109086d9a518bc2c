import Foundation
import LinuxSys
import NodeCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("live event monitor")
struct LiveEventTests {
    /// Events read from `fd` on a dedicated thread and parsed as they arrive, until end of stream.
    static func events(from fd: consuming FileDescriptor) -> AsyncThrowingStream<CHEvent, any Error> {
        let raw = fd.take()
        return AsyncThrowingStream { continuation in
            Thread {
                defer { close(raw) }
                var parser = CHEventParser()
                var buffer = [UInt8](repeating: 0, count: 4096)
                do {
                    while true {
                        let n = buffer.withUnsafeMutableBytes { read(raw, $0.baseAddress, $0.count) }
                        if n < 0 && errno == EINTR { continue }
                        if n < 0 { throw SystemError("read event monitor", errno: errno) }
                        if n == 0 { break }
                        for event in try parser.feed(buffer[0..<n]) { continuation.yield(event) }
                    }
                    try parser.finish()
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }.start()
        }
    }

    @Test func eventsFollowEachStateChangeAsItHappens() async throws {
        let pair = try SocketPair()
        let sim = try SimulatorProcess(eventMonitor: pair.writer.rawValue)
        defer { sim.terminate() }
        // Only the child keeps the writing end, so its exit ends the stream.
        let reader = pair.reader
        try pair.writer.close()
        let stream = Self.events(from: reader)
        let client = CloudHypervisorClient(socketPath: sim.socketPath)
        let kernel = try SimulatorProcess.kernel(in: sim.directory)

        try await withDeadline(.seconds(20)) {
            var events = stream.makeAsyncIterator()
            func next(_ count: Int) async throws -> [CHEvent.Kind] {
                var kinds: [CHEvent.Kind] = []
                for _ in 0..<count {
                    guard let event = try await events.next() else { break }
                    kinds.append(event.kind)
                }
                return kinds
            }
            #expect(try await next(1) == [.vmmStarting])
            try await client.create(config: vmConfig(kernel: kernel))
            try await client.boot()
            #expect(try await next(2) == [.vmBooting, .vmBooted])
            try await client.pause()
            #expect(try await next(2) == [.vmPausing, .vmPaused])
            try await client.resume()
            #expect(try await next(2) == [.vmResuming, .vmResumed])
            try await client.shutdownVMM()
            #expect(try await next(3) == [.vmShutdown, .vmDeleted, .vmmShutdown])
            // The VMM exited: the stream ends.
            #expect(try await next(1) == [])
        }
        #expect(exitedNormally(await sim.waitForExit()) == 0)
    }
}
