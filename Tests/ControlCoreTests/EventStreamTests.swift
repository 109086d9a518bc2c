import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing
@testable import ControlCore

/// Collects the bytes of a streaming response as they arrive, and says when anything arrived.
final class StreamCollector: NSObject, URLSessionDataDelegate, Sendable {
    private let received = Mutex("")
    private let watchers = Mutex<[AsyncStream<Void>.Continuation]>([])

    var text: String { received.withLock { $0 } }

    /// Wakes when the response head or more bytes arrive.
    var changes: AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        watchers.withLock { $0.append(continuation) }
        return stream
    }

    private func changed() {
        for watcher in watchers.withLock({ $0 }) { watcher.yield() }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        completionHandler(.allow)
        changed()
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        received.withLock { $0 += String(decoding: data, as: UTF8.self) }
        changed()
    }
}

@Suite("Event stream over HTTP")
struct EventStreamTests {
    @Test func serverSentEventsArriveLive() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let service = try makeService(dir)
        let app = Application(router: APIRoutes.router(service: service, token: "t", keepAlive: .milliseconds(50)),
                              configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/v1/events")))
            request.setValue("Bearer t", forHTTPHeaderField: "Authorization")
            let collector = StreamCollector()
            let session = URLSession(configuration: .ephemeral, delegate: collector, delegateQueue: nil)
            let head = collector.changes
            let task = session.dataTask(with: request)
            task.resume()
            defer {
                task.cancel()
                session.invalidateAndCancel()
            }
            // The server subscribes before it sends the response head.
            #expect(try await eventually(wakeOn: [head]) { service.events.subscriberCount == 1 })
            let bytes = collector.changes
            _ = try await service.createVM(CreateVMBody(spec: sampleSpec("web")), idempotencyKey: nil)
            #expect(try await eventually(wakeOn: [bytes]) { collector.text.contains("event: vm.create\n") })
            let text = collector.text
            #expect(text.contains("id: "))
            #expect(text.contains("data: {"))
            #expect(try await eventually(wakeOn: [bytes]) { collector.text.contains(": keep-alive\n\n") })
        }
    }
}

@Suite("Graceful shutdown", .serialized)
struct GracefulShutdownTests {
    @Test func sigtermEndsOpenEventStreamsAndExitsCleanly() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let daemon = try DaemonProcess(dir: dir, run: 1)
        defer { daemon.signal(SIGKILL) }
        let port = try #require(try await daemon.port())
        let token = String(decoding: FileManager.default.contents(atPath: dir.path + "/q.db.token") ?? Data(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/v1/events")))
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let collector = StreamCollector()
        let session = URLSession(configuration: .ephemeral, delegate: collector, delegateQueue: nil)
        let bytes = collector.changes
        let task = session.dataTask(with: request)
        task.resume()
        defer { task.cancel(); session.invalidateAndCancel() }
        #expect(try await eventually(wakeOn: [bytes]) { collector.text.contains("event: control.start") })
        daemon.signal(SIGTERM)
        #expect(try await daemon.exitStatus(within: .seconds(30)) == 0)
    }
}
