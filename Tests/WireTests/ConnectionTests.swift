import Foundation
import NIOCore
import SwiftProtobuf
import Testing
import VMModel
@testable import Wire

@Suite("Connections over loopback (plaintext TCP and Unix socket)")
struct ConnectionTests {
    @Test("handshake: versions, roles, names, capabilities and the node inventory reach both sides")
    func handshake() async throws {
        try await withServer { server in
            let connection = try await dialer(try server.endpoint).connect()
            #expect(connection.peer.role == .control)
            #expect(connection.peer.name == "qarax-control")
            #expect(connection.peer.protocolVersion == 1)
            #expect(connection.peer.capabilities == ["events"])
            #expect(connection.peer.certificate == nil)
            let accepted = try await server.connections.next("accepted connection")
            #expect(accepted.peer.role == .node)
            #expect(accepted.peer.name == "node-1")
            #expect(accepted.peer.node == Samples.inventory)
            await connection.close()
        }
    }

    @Test("plaintext TCP logs the loud --insecure warning on both sides")
    func insecureWarns() async throws {
        try await withServer { server in
            let warning = try await server.warnings.next("listener warning")
            #expect(warning.contains("PLAINTEXT") && warning.contains("--insecure"))
            let dialerWarnings = Collector<String>()
            let connection = try await dialer(try server.endpoint, warn: { dialerWarnings.add($0) }).connect()
            #expect(try await dialerWarnings.next("dialer warning").contains("UNAUTHENTICATED"))
            await connection.close()
        }
    }

    @Test("requests are answered out of order on one connection")
    func outOfOrder() async throws {
        let gates = Gates()
        try await withServer(gates: gates) { server in
            let connection = try await dialer(try server.endpoint).connect()
            let slow = Task { try await connection.call(Samples.request(.start(Samples.ref("slow-a")))) }
            // The slow request is blocked until the fast one (sent after it) opens its gate.
            let fast = try await connection.call(Samples.request(.start(Samples.ref("open-a"))))
            guard case .vm(let fastStatus) = fast.result else { throw WireError.protocolViolation("\(fast)") }
            #expect(fastStatus.name == "open-a")
            let slowAnswer = try await withDeadline { try await slow.value }
            guard case .vm(let slowStatus) = slowAnswer.result else { throw WireError.protocolViolation("\(slowAnswer)") }
            #expect(slowStatus.name == "slow-a")
            await connection.close()
        }
    }

    @Test("many concurrent calls each get their own answer")
    func concurrentCalls() async throws {
        try await withServer { server in
            let connection = try await dialer(try server.endpoint).connect()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let answer = try await connection.call(Samples.request(.info(Samples.ref("vm-\(index)"))))
                        guard case .vm(let status) = answer.result, status.name == "vm-\(index)" else {
                            throw WireError.protocolViolation("call \(index) got \(answer)")
                        }
                    }
                }
                try await group.waitForAll()
            }
            await connection.close()
        }
    }

    @Test("a domain error arrives as code + message + field")
    func errorMapping() async throws {
        try await withServer { server in
            let connection = try await dialer(try server.endpoint).connect()
            await #expect(throws: WireError.remote(WireErrorMapping.make(
                .invalidArgument, "\"fail\" is not a VM on this node", field: "name"))) {
                try await connection.call(Samples.request(.delete(Samples.ref("fail"))))
            }
            await connection.close()
        }
    }

    @Test("an operation this side does not know is answered UNIMPLEMENTED, and the link stays up")
    func unknownOperation() async throws {
        try await withServer { server in
            let connection = try await dialer(try server.endpoint).connect()
            let future = try WireRequest(serializedBytes: [0xD2, 0x02, 0x00] as [UInt8])
            do {
                _ = try await connection.call(future)
                Issue.record("an unknown operation was answered")
            } catch WireError.remote(let error) {
                #expect(error.code == .unimplemented)
            }
            let answer = try await connection.call(Samples.request(.nodeInfo(WireNodeInfoRequest())))
            #expect(answer.result == .node(Samples.inventory))
            await connection.close()
        }
    }

    @Test("a call without an answer times out with the caller's timeout")
    func timeout() async throws {
        try await withServer { server in
            let connection = try await dialer(try server.endpoint).connect()
            await #expect(throws: WireError.timedOut(after: .milliseconds(50))) {
                try await connection.call(Samples.request(.pause(Samples.ref("web"))), timeout: .milliseconds(50))
            }
            await connection.close()
        }
    }

    @Test("at the in-flight limit with a full wait queue a call is refused with .overloaded")
    func overloaded() async throws {
        let gates = Gates()
        try await withServer(gates: gates) { server in
            let configuration = WireConnectionConfiguration(maxOutgoingInFlight: 1, maxQueuedCalls: 0)
            let connection = try await dialer(try server.endpoint, configuration: configuration).connect()
            let first = Task { try await connection.call(Samples.request(.start(Samples.ref("slow-b")))) }
            try await withDeadline { await gates.wait("arrived-b") }
            await #expect(throws: WireError.overloaded(inFlightLimit: 1)) {
                try await connection.call(Samples.request(.info(Samples.ref("second"))))
            }
            gates.open("b")
            _ = try await withDeadline { try await first.value }
            _ = try await connection.call(Samples.request(.info(Samples.ref("third"))))
            await connection.close()
        }
    }

    @Test("calls beyond the in-flight limit wait in the bounded queue and are sent when a slot frees")
    func queued() async throws {
        let gates = Gates()
        try await withServer(gates: gates) { server in
            let configuration = WireConnectionConfiguration(maxOutgoingInFlight: 1, maxQueuedCalls: 4)
            let connection = try await dialer(try server.endpoint, configuration: configuration).connect()
            let first = Task { try await connection.call(Samples.request(.start(Samples.ref("slow-c")))) }
            try await withDeadline { await gates.wait("arrived-c") }
            let queued = (0..<4).map { index in
                Task { try await connection.call(Samples.request(.info(Samples.ref("queued-\(index)")))) }
            }
            gates.open("c")
            _ = try await withDeadline { try await first.value }
            for (index, task) in queued.enumerated() {
                let answer = try await withDeadline { try await task.value }
                guard case .vm(let status) = answer.result else { throw WireError.protocolViolation("\(answer)") }
                #expect(status.name == "queued-\(index)")
            }
            await connection.close()
        }
    }

    @Test("events pushed by a node arrive in order with sequence numbers")
    func events() async throws {
        try await withServer { server in
            let connection = try await dialer(try server.endpoint).connect()
            let accepted = try await server.connections.next("accepted")
            for event in Samples.events { try await connection.push(event) }
            let received = try await withDeadline {
                var received: [WireEvent] = []
                for await event in accepted.events {
                    received.append(event)
                    if received.count == Samples.events.count { break }
                }
                return received
            }
            #expect(received.map(\.sequence) == Array(1...UInt64(Samples.events.count)))
            #expect(received.map(\.kind) == Samples.events.map(\.kind))
            await connection.close()
        }
    }

    @Test("the control side can call the node that dialled it (requests flow both ways)")
    func reverseCalls() async throws {
        try await withServer { server in
            let connection = try await dialer(try server.endpoint).connect()
            let accepted = try await server.connections.next("accepted")
            let serving = Task { await connection.serve(TestHandler(gates: Gates())) }
            let answer = try await accepted.call(Samples.request(.nodeInfo(WireNodeInfoRequest())))
            #expect(answer.result == .node(Samples.inventory))
            await connection.close()
            await serving.value
        }
    }

    static let garbage: [(String, [UInt8], String)] = {
        var oversized: [UInt8] = [0x51, 0x58, 0x57, 0x52, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        oversized += [0x00, 0x20, 0x00, 0x00]
        return [
            ("bad magic", Array("GET / HTTP/1.1\r\n\r\n".utf8), "magic"),
            ("unknown version", [0x51, 0x58, 0x57, 0x52, 0x09, 0x01] + [UInt8](repeating: 0, count: 14), "version 9"),
            ("unknown type", [0x51, 0x58, 0x57, 0x52, 0x01, 0x63] + [UInt8](repeating: 0, count: 14), "type 99"),
            ("oversized", oversized, "above the limit"),
            ("request before hello", [0x51, 0x58, 0x57, 0x52, 0x01, 0x03] + [UInt8](repeating: 0, count: 14),
             "before the handshake"),
        ]
    }()

    @Test("a peer sending garbage gets a Goodbye naming the error and is closed; others are still served",
          arguments: garbage)
    func garbagePeer(name: String, bytes: [UInt8], expected: String) async throws {
        try await withServer { server in
            let port = try #require(server.listener.port)
            let frames = try await withDeadline { try await rawExchange(port: port, bytes) }
            let goodbye = try #require(try goodbye(in: frames))
            #expect(goodbye.reason.code == .protocol)
            #expect(goodbye.reason.message.contains(expected), "\(goodbye.reason.message)")
            let refused = try await server.refused.next("refusal")
            #expect(refused.description.contains(expected))
            let connection = try await dialer(try server.endpoint).connect()
            _ = try await connection.call(Samples.request(.info(Samples.ref("still-serving"))))
            await connection.close()
        }
    }

    @Test("a stream cut inside a frame is a truncation error; the listener goes on")
    func truncatedPeer() async throws {
        try await withServer { server in
            let port = try #require(server.listener.port)
            let partial: [UInt8] = [0x51, 0x58, 0x57, 0x52, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40, 1, 2]
            _ = try await withDeadline { try await rawExchange(port: port, partial, halfClose: true) }
            let refused = try await server.refused.next("refusal")
            #expect(refused == .framing(.truncated(buffered: 22, needed: 60)))
            let connection = try await dialer(try server.endpoint).connect()
            _ = try await connection.call(Samples.request(.info(Samples.ref("still-serving"))))
            await connection.close()
        }
    }

    @Test("a peer with no common protocol version is refused with the versions named")
    func noCommonVersion() async throws {
        try await withServer { server in
            var local = nodeIdentity
            local.protocolVersions = [7, 8]
            do {
                _ = try await dialer(try server.endpoint, local: local).connect()
                Issue.record("connected without a common version")
            } catch WireError.remote(let error) {
                #expect(error.code == .protocol)
                #expect(error.message.contains("[7, 8]"))
            }
            #expect(try await server.refused.next() == .noCommonVersion(offered: [7, 8], supported: [1]))
        }
    }

    @Test("a silent peer is declared dead after the missed-heartbeat limit and closed")
    func deadPeer() async throws {
        let configuration = WireConnectionConfiguration(heartbeatInterval: .milliseconds(20), missedHeartbeatLimit: 3)
        try await withServer(configuration: configuration) { server in
            let port = try #require(server.listener.port)
            var hello = Data()
            var bytes = ByteBuffer()
            try WireEnvelope(.hello(WireHandshake.hello(from: nodeIdentity))).write(to: &bytes)
            hello.append(contentsOf: bytes.readableBytesView)
            // Sends Hello, then never answers a heartbeat.
            let helloBytes = Array(hello)
            let frames = try await withDeadline { try await rawExchange(port: port, helloBytes) }
            #expect(frames.first?.type == .helloAck)
            #expect(try goodbye(in: frames)?.reason.code == .unavailable)
            guard case .peerUnresponsive = try await server.closed.next("close reason") else {
                Issue.record("closed for another reason")
                return
            }
        }
    }

    @Test("the Unix socket is mode 0600 and serves the same operations without TLS")
    func unixSocket() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qx-wire-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("node.sock").path
        try await withServer(endpoint: .unix(path: path), local: nodeIdentity, acceptedRoles: [.admin]) { server in
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            let admin = WireLocalIdentity(role: .admin, name: "qarax-cli")
            let connection = try await dialer(.unix(path: path), local: admin).connect()
            #expect(connection.peer.node == Samples.inventory)
            let answer = try await connection.call(Samples.request(.info(Samples.ref("web"))))
            guard case .vm(let status) = answer.result else { throw WireError.protocolViolation("\(answer)") }
            #expect(status.name == "web")
            await connection.close()
        }
    }

    @Test("a role the listener does not accept is refused")
    func wrongRole() async throws {
        try await withServer(acceptedRoles: [.node]) { server in
            let admin = WireLocalIdentity(role: .admin, name: "qarax-cli")
            do {
                _ = try await dialer(try server.endpoint, local: admin).connect()
                Issue.record("an admin client was accepted where only nodes may connect")
            } catch WireError.remote(let error) {
                #expect(error.code == .permissionDenied)
            }
        }
    }
}

@Suite("Frame limits on a live connection")
struct LiveLimitTests {
    @Test("a request above the frame limit fails that call only; the connection stays up")
    func oversizedRequest() async throws {
        let configuration = WireConnectionConfiguration(maxFrameSize: 256)
        try await withServer(configuration: configuration) { server in
            let connection = try await dialer(try server.endpoint, configuration: configuration).connect()
            var create = WireCreateVM()
            create.specJson = Data(repeating: 0x20, count: 1000)
            await #expect(throws: WireFrameError.oversized(frameSize: 1026, limit: 256)) {
                try await connection.call(Samples.request(.create(create)))
            }
            _ = try await connection.call(Samples.request(.info(Samples.ref("web"))))
            await connection.close()
        }
    }

    @Test("an answer above the peer's frame limit becomes a RESOURCE_EXHAUSTED error")
    func oversizedAnswer() async throws {
        let configuration = WireConnectionConfiguration(maxFrameSize: 1024)
        try await withServer(configuration: configuration) { server in
            let connection = try await dialer(try server.endpoint, configuration: configuration).connect()
            do {
                _ = try await connection.call(Samples.request(.list(WireListVMs())))
                Issue.record("an answer above the limit was sent")
            } catch WireError.remote(let error) {
                #expect(error.code == .resourceExhausted)
            }
            _ = try await connection.call(Samples.request(.info(Samples.ref("web"))))
            await connection.close()
        }
    }
}
