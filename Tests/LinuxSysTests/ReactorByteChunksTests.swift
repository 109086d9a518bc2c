import Glibc
import Testing
import LinuxSys

@Suite struct ReactorByteChunksTests {
    @Test(arguments: [16, 4096, 1 << 20])
    func slowConsumerGetsEveryByteInOrder(maxBufferedBytes: Int) async throws {
        let reactor = try Reactor.shared()
        let pipe = try PipePair()
        let payload = [UInt8]((0..<(1 << 18)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) })
        let chunks = try reactor.chunks(of: try pipe.readEnd.duplicate(), maxBufferedBytes: maxBufferedBytes)
        let raw = try pipe.writeEnd.duplicate().take()
        _ = consume pipe
        let written = OneShot<Bool>()
        TestThread {
            var offset = 0
            while offset < payload.count {
                let n = payload[offset...].withUnsafeBytes { Glibc.write(raw, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                offset += n
            }
            close(raw)
            written.set(offset == payload.count)
        }.start()
        let received = try await withDeadline {
            var received: [UInt8] = []
            for try await chunk in chunks {
                received.append(contentsOf: chunk)
                await Task.yield()
            }
            return received
        }
        #expect(try await withDeadline { await written.wait() } == true)
        #expect(received == payload)
    }

    @Test func cancellingTheConsumerEndsTheSequence() async throws {
        let reactor = try Reactor.shared()
        let pipe = try PipePair()
        let chunks = try reactor.chunks(of: try pipe.readEnd.duplicate())
        let consumer = Task {
            var count = 0
            for try await _ in chunks { count += 1 }
            return count
        }
        consumer.cancel()
        #expect(try await withDeadline { try await consumer.value } == 0)
        _ = consume pipe
    }
}
