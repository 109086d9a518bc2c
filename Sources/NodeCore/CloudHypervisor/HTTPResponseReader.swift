/// One HTTP/1.1 request to cloud-hypervisor's API, as bytes: request line, `Host`, `Accept`, and for
/// `PUT` a `Content-Length` (CH needs it even without a body) and the JSON body.
enum HTTPRequestBytes {
    static func encode(isGet: Bool, path: String, body: [UInt8]) -> [UInt8] {
        var head = (isGet ? "GET " : "PUT ") + path + " HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
        if !isGet {
            head += "Content-Length: \(body.count)\r\n"
            if !body.isEmpty { head += "Content-Type: application/json\r\n" }
        }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}

/// Reads one HTTP/1.1 response from bytes as they arrive: the status line, the headers (informational
/// 1xx answers skipped), then a body framed by `Content-Length`, by chunked transfer coding, or by
/// the end of the connection. The whole answer is capped at `maxBytes`.
struct HTTPResponseReader {
    enum Failure: Error, Equatable {
        case malformed(String)
        case tooLarge
    }

    private enum Framing {
        case none
        case length(Int)
        case chunked
        case untilClose
    }

    let maxBytes: Int
    private var buffer: [UInt8] = []
    /// Where unread bytes start in `buffer`.
    private var position = 0
    private var status: Int?
    private var framing: Framing?
    private var body: [UInt8] = []
    /// Chunked coding: the bytes still due in the current chunk, then its CRLF.
    private var chunkRemaining: Int?
    /// Every byte of the answer so far (status line, headers, framing and body).
    private var received = 0

    init(maxBytes: Int) {
        self.maxBytes = maxBytes
    }

    /// Takes the next bytes; returns the response once it is complete.
    mutating func feed(_ bytes: [UInt8]) throws(Failure) -> CHResponse? {
        received += bytes.count
        if received > maxBytes { throw .tooLarge }
        if position > 0 && position == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            position = 0
        }
        buffer += bytes
        return try advance()
    }

    /// The connection ended: a body framed by the end of the connection is complete now; anything
    /// else incomplete is nil.
    mutating func endOfStream() throws(Failure) -> CHResponse? {
        if let done = try advance() { return done }
        if case .untilClose? = framing, let status {
            body += buffer[position...]
            position = buffer.count
            return CHResponse(status: status, body: body)
        }
        return nil
    }

    private mutating func advance() throws(Failure) -> CHResponse? {
        while framing == nil {
            guard let end = find(crlfcrlf, from: position) else { return nil }
            try readHead(buffer[position..<end])
            position = end + 4
        }
        guard let status, let framing else { return nil }
        switch framing {
        case .none:
            return CHResponse(status: status, body: [])
        case .length(let length):
            guard buffer.count - position >= length else { return nil }
            body = Array(buffer[position..<position + length])
            position += length
            return CHResponse(status: status, body: body)
        case .chunked:
            return try readChunks() ? CHResponse(status: status, body: body) : nil
        case .untilClose:
            return nil
        }
    }

    private mutating func readHead(_ head: ArraySlice<UInt8>) throws(Failure) {
        let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.first.map(String.init) ?? ""
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let code = Int(parts[1]) else {
            throw .malformed("status line \"\(statusLine.prefix(80))\"")
        }
        // An informational answer (100 Continue…) precedes the real one.
        if (100..<200).contains(code) { return }
        var length: Int?
        var chunked = false
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw .malformed("header line \"\(line.prefix(80))\"") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmed()
            switch name {
            case "content-length":
                guard let n = Int(value), n >= 0 else { throw .malformed("Content-Length \"\(value.prefix(40))\"") }
                if n > maxBytes { throw .tooLarge }
                length = n
            case "transfer-encoding":
                chunked = value.lowercased().split(separator: ",").last.map { $0.trimmed() } == "chunked"
            default:
                continue
            }
        }
        status = code
        if code == 204 || code == 304 {
            framing = Framing.none
        } else if chunked {
            framing = .chunked
        } else if let length {
            framing = .length(length)
        } else {
            framing = .untilClose
        }
    }

    /// Consumes complete chunks; true once the last chunk (and the trailer section) is read.
    private mutating func readChunks() throws(Failure) -> Bool {
        while true {
            if let remaining = chunkRemaining {
                guard buffer.count - position >= remaining + 2 else { return false }
                body += buffer[position..<position + remaining]
                guard buffer[position + remaining] == 13, buffer[position + remaining + 1] == 10 else {
                    throw .malformed("chunk without its CRLF")
                }
                position += remaining + 2
                chunkRemaining = nil
                continue
            }
            guard let lineEnd = find(crlf, from: position) else { return false }
            let line = String(decoding: buffer[position..<lineEnd], as: UTF8.self)
            let sizeText = line.split(separator: ";", maxSplits: 1).first.map { $0.trimmed() } ?? ""
            guard let size = Int(sizeText, radix: 16), size >= 0 else { throw .malformed("chunk size \"\(line.prefix(40))\"") }
            if size == 0 {
                // Trailer fields (ignored) up to an empty line.
                var cursor = lineEnd + 2
                while true {
                    guard let end = find(crlf, from: cursor) else { return false }
                    if end == cursor {
                        position = end + 2
                        return true
                    }
                    cursor = end + 2
                }
            }
            if size > maxBytes { throw .tooLarge }
            position = lineEnd + 2
            chunkRemaining = size
        }
    }

    private let crlf: [UInt8] = [13, 10]
    private let crlfcrlf: [UInt8] = [13, 10, 13, 10]

    private func find(_ needle: [UInt8], from start: Int) -> Int? {
        guard buffer.count - start >= needle.count else { return nil }
        var i = start
        while i <= buffer.count - needle.count {
            if buffer[i] == needle[0] {
                var match = true
                for j in 1..<needle.count where buffer[i + j] != needle[j] {
                    match = false
                    break
                }
                if match { return i }
            }
            i += 1
        }
        return nil
    }
}

private extension Substring {
    /// Without leading and trailing spaces and tabs.
    func trimmed() -> String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(drop(while: isBlank).reversed().drop(while: isBlank).reversed())
    }
}
