import Testing
@testable import NodeCore

/// The API client's own HTTP/1.1 framing: each answer fed all at once, a byte at a time and in
/// random splits gives the same response.
@Suite struct HTTPResponseReaderTests {
    static let answers: [(String, Int, String)] = [
        ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 19\r\n\r\n{\"version\":\"v52.0\"}", 200, "{\"version\":\"v52.0\"}"),
        ("HTTP/1.1 204 \r\n\r\n", 204, ""),
        ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", 204, ""),
        ("HTTP/1.1 500 \r\ncontent-length: 4\r\n\r\nboom", 500, "boom"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nTrailer: x\r\n\r\n", 200, "{\"a\":1}"),
    ]

    static func read(_ text: String, splits: [Int]) throws -> CHResponse? {
        var reader = HTTPResponseReader(maxBytes: 1 << 16)
        let bytes = Array(text.utf8)
        var start = 0
        for end in splits + [bytes.count] where end > start {
            if let done = try reader.feed(Array(bytes[start..<end])) { return done }
            start = end
        }
        return try reader.endOfStream()
    }

    @Test(arguments: answers)
    func sameResponseHoweverTheBytesArrive(_ answer: (String, Int, String)) throws {
        let (text, status, body) = answer
        let expected = CHResponse(status: status, body: Array(body.utf8))
        let count = text.utf8.count
        #expect(try Self.read(text, splits: []) == expected)
        #expect(try Self.read(text, splits: Array(1..<count)) == expected)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let splits = (0..<4).map { _ in Int.random(in: 1..<count, using: &generator) }.sorted()
            #expect(try Self.read(text, splits: splits) == expected, "splits \(splits)")
        }
    }

    @Test func aBodyWithoutFramingEndsWithTheConnection() throws {
        var reader = HTTPResponseReader(maxBytes: 1024)
        #expect(try reader.feed(Array("HTTP/1.1 200 \r\n\r\n{\"x\":".utf8)) == nil)
        #expect(try reader.feed(Array("1}".utf8)) == nil)
        #expect(try reader.endOfStream() == CHResponse(status: 200, body: Array("{\"x\":1}".utf8)))
    }

    @Test func anAnswerCutShortIsIncomplete() throws {
        var reader = HTTPResponseReader(maxBytes: 1024)
        #expect(try reader.feed(Array("HTTP/1.1 200 \r\nContent-Length: 10\r\n\r\nabc".utf8)) == nil)
        #expect(try reader.endOfStream() == nil)
    }

    @Test(arguments: [
        "SSH-2.0-OpenSSH\r\n\r\n",
        "HTTP/1.1 2000 \r\n\r\n",
        "HTTP/1.1 200 \r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 \r\nContent-Length: -3\r\n\r\n",
        "HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
    ])
    func malformedAnswersAreRefused(_ text: String) {
        var reader = HTTPResponseReader(maxBytes: 1024)
        #expect(throws: (any Error).self) { _ = try reader.feed(Array(text.utf8)) }
    }

    @Test func theCapCoversTheWholeAnswer() throws {
        var declared = HTTPResponseReader(maxBytes: 100)
        #expect(throws: HTTPResponseReader.Failure.tooLarge) {
            _ = try declared.feed(Array("HTTP/1.1 200 \r\nContent-Length: 101\r\n\r\n".utf8))
        }
        var streamed = HTTPResponseReader(maxBytes: 40)
        #expect(try streamed.feed(Array("HTTP/1.1 200 \r\nContent-Length: 30\r\n\r\n".utf8)) == nil)
        #expect(throws: HTTPResponseReader.Failure.tooLarge) { _ = try streamed.feed(Array(repeating: 65, count: 30)) }
    }

    @Test func requestsCarryLengthAndTypeOnlyForPut() {
        #expect(String(decoding: HTTPRequestBytes.encode(isGet: true, path: "/api/v1/vmm.ping", body: []), as: UTF8.self)
            == "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n")
        #expect(String(decoding: HTTPRequestBytes.encode(isGet: false, path: "/api/v1/vm.boot", body: []), as: UTF8.self)
            == "PUT /api/v1/vm.boot HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nContent-Length: 0\r\n\r\n")
        #expect(String(decoding: HTTPRequestBytes.encode(isGet: false, path: "/p", body: Array("{}".utf8)), as: UTF8.self)
            == "PUT /p HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
    }
}
