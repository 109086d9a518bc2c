import Foundation
import LinuxSys
import NodeCore
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A one-shot peer on a real Unix socket: accepts one connection, reads one request (up to the
/// blank line and `Content-Length` bytes), answers `answer` verbatim and closes. Returns the
/// request it read.
func cannedExchange(answer: String, _ body: @escaping @Sendable (CloudHypervisorClient) async -> Void) async throws -> String {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/api.sock"
    let listener = try UnixSocket.listen(path: path)
    let raw = listener.take()
    let server = Task {
        try await onThread { () throws -> String in
            let listener = FileDescriptor(adopting: raw)
            let connection = try UnixSocket.accept(listener)
            var request: [UInt8] = []
            while true {
                let text = String(decoding: request, as: UTF8.self)
                if let end = text.range(of: "\r\n\r\n") {
                    let length = text.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                        .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                    if text.utf8.count >= text.utf8.distance(from: text.startIndex, to: end.upperBound) + length { break }
                }
                let chunk = try UnixSocket.receive(connection)
                if chunk.bytes.isEmpty { break }
                request += chunk.bytes
            }
            try UnixSocket.send(connection, Array(answer.utf8))
            return String(decoding: request, as: UTF8.self)
        }
    }
    await body(CloudHypervisorClient(socketPath: path, timeout: .seconds(10)))
    return try await server.value
}

@Suite("HTTP wire format")
struct WireTests {
    @Test func bodylessPutCarriesContentLengthZero() async throws {
        let request = try await cannedExchange(answer: "HTTP/1.1 204 \r\n\r\n") { client in
            await #expect(throws: Never.self) { try await client.boot() }
        }
        #expect(request.hasPrefix("PUT /api/v1/vm.boot HTTP/1.1\r\n"))
        #expect(request.lowercased().contains("content-length: 0\r\n"))
        #expect(request.lowercased().contains("host: localhost\r\n"))
        #expect(!request.lowercased().contains("transfer-encoding"))
    }

    @Test func putWithABodySendsItAsJSON() async throws {
        let request = try await cannedExchange(answer: "HTTP/1.1 204 \r\n\r\n") { client in
            await #expect(throws: Never.self) { try await client.removeDevice(id: "net0") }
        }
        #expect(request.hasPrefix("PUT /api/v1/vm.remove-device HTTP/1.1\r\n"))
        #expect(request.lowercased().contains("content-type: application/json\r\n"))
        #expect(request.hasSuffix("\r\n\r\n" + #"{"id":"net0"}"#))
    }

    @Test func encodableBodiesAreSentAsJSON() async throws {
        struct Disk: Encodable {
            var path: String
            var readonly: Bool
        }
        let request = try await cannedExchange(answer: "HTTP/1.1 204 \r\n\r\n") { client in
            let result = try? await client.addDisk(Disk(path: "/var/lib/qarax/d.img", readonly: true))
            #expect(result == .some(nil))
        }
        #expect(request.hasSuffix(#"{"path":"/var/lib/qarax/d.img","readonly":true}"#))
    }

    @Test func unencodableBodiesAreNotSent() async throws {
        struct Bad: Encodable {
            func encode(to encoder: any Encoder) throws {
                throw EncodingError.invalidValue(0, .init(codingPath: [], debugDescription: "no"))
            }
        }
        let client = CloudHypervisorClient(socketPath: "/nonexistent/api.sock")
        await #expect(throws: CHError.self) { try await client.create(Bad()) }
        do {
            try await client.create(Bad())
        } catch {
            guard case .invalidRequest(let call, _) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(call == "vm.create")
        }
    }

    @Test func anAnswerEndedByClosingTheConnectionIsComplete() async throws {
        _ = try await cannedExchange(answer: "HTTP/1.1 200 \r\nContent-Type: application/json\r\n\r\n{\"version\":\"v52.0\"}") { client in
            let ping = try? await client.ping()
            #expect(ping?.version == "v52.0")
        }
    }

    @Test func anAnswerCutShortMeansTheVMMIsGone() async throws {
        _ = try await cannedExchange(answer: "HTTP/1.1 200 \r\nContent-Length: 100\r\n\r\n{\"vers") { client in
            await #expect(throws: CHError.vmmGone(call: "vm.info", detail: "connection closed in the middle of the answer")) {
                _ = try await client.info()
            }
        }
    }

    @Test func garbageIsAMalformedAnswer() async throws {
        _ = try await cannedExchange(answer: "SSH-2.0-OpenSSH\r\n\r\n") { client in
            do throws(CHError) {
                try await client.pause()
                Issue.record("garbage accepted")
            } catch {
                guard case .malformedResponse(let call, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(call == "vm.pause")
            }
        }
    }

    @Test func anErrorBodyThatIsNotAChainIsKeptWhole() async throws {
        _ = try await cannedExchange(answer: "HTTP/1.1 503 \r\nContent-Length: 4\r\n\r\nboom") { client in
            await #expect(throws: CHError.api(status: 503, chain: ["boom"], call: "vm.resume")) {
                try await client.resume()
            }
        }
    }

    @Test func theClosedChannelErrorMeansTheVMMIsGone() async throws {
        let chain = #"["Error from API","API response receive error","receiving on a closed channel"]"#
        _ = try await cannedExchange(answer: "HTTP/1.1 500 \r\nContent-Length: \(chain.utf8.count)\r\n\r\n\(chain)") { client in
            await #expect(throws: CHError.vmmGone(call: "vm.shutdown", detail: "Error from API: API response receive error: receiving on a closed channel")) {
                try await client.shutdown()
            }
        }
    }

    @Test func aSuccessStatusOtherThanTheCallsIsAnError() async throws {
        _ = try await cannedExchange(answer: "HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\n{}") { client in
            await #expect(throws: CHError.api(status: 200, chain: ["{}"], call: "vm.boot")) { try await client.boot() }
        }
    }
}
