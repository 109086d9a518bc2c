#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinuxSys
import NodeCore
import Testing

/// A small deterministic generator, so shuffled splits are reproducible.
struct QEMUSplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct QEMUQMPFramingTests {
    static let stream = Array((
        #"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"# + "\r\n"
        + #"{"return": {}, "id": 1}"# + "\r\n"
        + "\r\n"
        + #"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"# + "\n"
        + #"{"return": {"status": "paused", "running": false}, "id": 2}"# + "\r\n"
    ).utf8)
    static let expected = [
        #"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#,
        #"{"return": {}, "id": 1}"#,
        #"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#,
        #"{"return": {"status": "paused", "running": false}, "id": 2}"#,
    ]

    private func feed(_ chunks: [ArraySlice<UInt8>]) throws -> [String] {
        var framer = QMPLineFramer()
        var lines: [String] = []
        for chunk in chunks {
            lines += try framer.append(chunk).map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(framer.pendingByteCount == 0)
        return lines
    }

    @Test func allAtOnce() throws {
        #expect(try feed([Self.stream[...]]) == Self.expected)
    }

    @Test func oneByteAtATime() throws {
        #expect(try feed(Self.stream.indices.map { Self.stream[$0...$0] }) == Self.expected)
    }

    @Test(arguments: 1...20 as ClosedRange<UInt64>)
    func randomSplits(seed: UInt64) throws {
        var generator = QEMUSplitMix64(state: seed)
        var chunks: [ArraySlice<UInt8>] = []
        var start = 0
        while start < Self.stream.count {
            let length = Int.random(in: 1...40, using: &generator)
            let end = min(start + length, Self.stream.count)
            chunks.append(Self.stream[start..<end])
            start = end
        }
        #expect(try feed(chunks) == Self.expected)
    }

    @Test func lineAtTheCapPassesOneMoreByteFails() throws {
        var framer = QMPLineFramer(maxLineBytes: 8)
        #expect(try framer.append(Array("12345678\r".utf8)) == [])
        #expect(try framer.append(Array("\n".utf8)) == [Array("12345678".utf8)])
        var over = QMPLineFramer(maxLineBytes: 8)
        #expect(try over.append(Array("1234".utf8)) == [])
        #expect(throws: QMPLineTooLong(limit: 8)) { try over.append(Array("56789".utf8)) }
        var overInOneGo = QMPLineFramer(maxLineBytes: 8)
        #expect(throws: QMPLineTooLong(limit: 8)) { try overInOneGo.append(Array("123456789\r\nok\r\n".utf8)) }
    }

    @Test(arguments: [
        ("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard",
         QMPVersion(major: 7, minor: 2, micro: 22, package: "Debian 1:7.2+dfsg-7+deb12u18+b3")),
        ("QEMU emulator version 9.1.0\n", QMPVersion(major: 9, minor: 1, micro: 0)),
    ])
    func versionOutputParses(_ output: String, _ version: QMPVersion) {
        #expect(QMPVersion(versionOutput: output) == version)
    }

    @Test(arguments: ["", "qemu 7.2", "QEMU emulator version 7.2\n", "QEMU emulator version x.y.z"])
    func versionOutputRefusesOtherText(_ output: String) {
        #expect(QMPVersion(versionOutput: output) == nil)
    }

    @Test func valuesKeepIntegersApartFromDoubles() throws {
        let value = try JSONDecoder().decode(QMPValue.self, from: Data(#"{"a": 1, "b": 1.5, "c": true, "d": null, "e": ["x"]}"#.utf8))
        #expect(value == .object(["a": .int(1), "b": .double(1.5), "c": .bool(true), "d": .null, "e": .array([.string("x")])]))
        #expect(value.description == #"{"a":1,"b":1.5,"c":true,"d":null,"e":["x"]}"#)
    }
}

/// The client against a scripted peer on a socket pair, for what a healthy QEMU never sends.
@Suite struct QEMUQMPClientProtocolTests {
    private static let greeting = #"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "test"}, "capabilities": []}}"# + "\r\n"

    /// A socket pair: the client end adopted by QMPClient, the peer end scripted by the test.
    private static func pair() throws -> (client: Int32, peer: Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SystemError("socketpair", errno: errno)
        }
        return (fds[0], fds[1])
    }

    private static func send(_ peer: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(peer, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads one request line from the peer end (runs on its own thread).
    private static func readRequest(_ peer: Int32) async -> QMPValue? {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                var line: [UInt8] = []
                var byte: UInt8 = 0
                while recv(peer, &byte, 1, 0) == 1 {
                    if byte == UInt8(ascii: "\n") { break }
                    line.append(byte)
                }
                continuation.resume(returning: try? JSONDecoder().decode(QMPValue.self, from: Data(line)))
            }
            thread.start()
        }
    }

    private static func negotiated() async throws -> (QMPClient, Int32) {
        let (client, peer) = try pair()
        send(peer, greeting)
        async let connected = QMPClient.negotiate(adopting: FileDescriptor(adopting: client))
        let request = await readRequest(peer)
        #expect(request?["execute"] == .string("qmp_capabilities"))
        send(peer, #"{"return": {}, "id": \#(request?["id"]?.intValue ?? 0)}"# + "\r\n")
        return (try await connected, peer)
    }

    @Test func replyWithoutIDGoesToTheOldestCommandAndErrorsKeepClassAndDesc() async throws {
        let (qmp, peer) = try await Self.negotiated()
        defer { qmp.close(); close(peer) }
        let reply = Task { try await qmp.stop() }
        _ = await Self.readRequest(peer)
        Self.send(peer, #"{"error": {"class": "GenericError", "desc": "JSON parse error, bad"}}"# + "\r\n")
        await #expect(throws: QMPError.command(command: "stop", errorClass: "GenericError", description: "JSON parse error, bad")) {
            try await reply.value
        }
    }

    @Test func oversizedLineDropsTheConnectionAndFailsWaitingCommands() async throws {
        let (qmp, peer) = try await Self.negotiated()
        defer { qmp.close(); close(peer) }
        let status = Task { try await qmp.queryStatus() }
        _ = await Self.readRequest(peer)
        Self.send(peer, String(repeating: "x", count: QMPLineFramer.defaultMaxLineBytes + 1))
        await #expect(throws: QMPError.lineTooLong(limit: QMPLineFramer.defaultMaxLineBytes)) { try await status.value }
        await #expect(throws: QMPError.lineTooLong(limit: QMPLineFramer.defaultMaxLineBytes)) { try await qmp.cont() }
    }

    @Test func malformedJSONIsAProtocolError() async throws {
        let (qmp, peer) = try await Self.negotiated()
        defer { qmp.close(); close(peer) }
        let status = Task { try await qmp.queryStatus() }
        _ = await Self.readRequest(peer)
        Self.send(peer, "{not json}\r\n")
        await #expect {
            try await status.value
        } throws: { error in
            if case .malformed = error as? QMPError { true } else { false }
        }
    }

    @Test func peerClosingFailsWaitingCommandsAndEndsEvents() async throws {
        let (qmp, peer) = try await Self.negotiated()
        defer { qmp.close() }
        let status = Task { try await qmp.queryStatus() }
        _ = await Self.readRequest(peer)
        Self.send(peer, #"{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}, "timestamp": {"seconds": 5, "microseconds": 500000}}"# + "\r\n")
        close(peer)
        await #expect(throws: QMPError.disconnected) { try await status.value }
        var received: [QMPEvent] = []
        for await event in qmp.events { received.append(event) }
        #expect(received.map(\.kind) == [.shutdown(guest: true, reason: .guestShutdown)])
        #expect(received.first?.timestamp == 5.5)
    }

    @Test func eventsAreTyped() async throws {
        let (qmp, peer) = try await Self.negotiated()
        defer { qmp.close() }
        let lines = [
            #"{"event": "DEVICE_DELETED", "data": {"device": "nic1", "path": "/machine/peripheral/nic1"}, "timestamp": {"seconds": 1, "microseconds": 0}}"#,
            #"{"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral-anon/device[0]/virtio-backend"}, "timestamp": {"seconds": 1, "microseconds": 0}}"#,
            #"{"event": "GUEST_PANICKED", "data": {"action": "pause"}, "timestamp": {"seconds": 2, "microseconds": 0}}"#,
            #"{"event": "RESET", "data": {"guest": true, "reason": "guest-reset"}, "timestamp": {"seconds": 3, "microseconds": 0}}"#,
            #"{"event": "POWERDOWN", "timestamp": {"seconds": 4, "microseconds": 0}}"#,
            #"{"event": "SHUTDOWN", "data": {"guest": false, "reason": "something-new"}, "timestamp": {"seconds": 5, "microseconds": 0}}"#,
            #"{"event": "NIC_RX_FILTER_CHANGED", "data": {"name": "nic1"}, "timestamp": {"seconds": 6, "microseconds": 0}}"#,
        ]
        Self.send(peer, lines.joined(separator: "\r\n") + "\r\n")
        close(peer)
        var received: [QMPEvent] = []
        for await event in qmp.events { received.append(event) }
        #expect(received.map(\.kind) == [
            .deviceDeleted(device: "nic1", path: "/machine/peripheral/nic1"),
            .deviceDeleted(device: nil, path: "/machine/peripheral-anon/device[0]/virtio-backend"),
            .guestPanicked(action: "pause"),
            .reset(guest: true, reason: .guestReset),
            .powerdown,
            .shutdown(guest: false, reason: QMPShutdownReason(rawValue: "something-new")),
            .other("NIC_RX_FILTER_CHANGED"),
        ])
        #expect(received.last?.data?["name"] == .string("nic1"))
    }

    @Test func greetingThatIsNotQMPIsRefused() async throws {
        let (client, peer) = try Self.pair()
        defer { close(peer) }
        Self.send(peer, #"{"hello": 1}"# + "\r\n")
        await #expect {
            _ = try await QMPClient.negotiate(adopting: FileDescriptor(adopting: client))
        } throws: { error in
            if case .malformed = error as? QMPError { true } else { false }
        }
    }

    @Test func cancellingWhileWaitingForTheGreetingFailsWithCancelled() async throws {
        let (client, peer) = try Self.pair()
        defer { close(peer) }
        let connecting = Task { try await QMPClient.negotiate(adopting: FileDescriptor(adopting: client)) }
        connecting.cancel()
        await #expect(throws: QMPError.cancelled) { _ = try await connecting.value }
        // The client end is closed: the peer reads end-of-file.
        var byte: UInt8 = 0
        #expect(recv(peer, &byte, 1, 0) == 0)
    }

    @Test func connectingToAMissingSocketReportsErrno() async throws {
        await #expect(throws: QMPError.system(SystemError("connect /nonexistent/qmp.sock", errno: ENOENT))) {
            _ = try await QMPClient.connect(socketPath: "/nonexistent/qmp.sock")
        }
    }
}
