/// A QMP line was longer than the framer accepts.
public struct QMPLineTooLong: Error, Hashable, Sendable, CustomStringConvertible {
    public let limit: Int
    public init(limit: Int) { self.limit = limit }
    public var description: String { "QMP message longer than \(limit) bytes without a line end" }
}

/// Splits the QMP byte stream into messages: QEMU writes one JSON object per line, ended by CRLF.
///
/// Incremental: bytes may arrive in any split. A line (without its end) may hold at most
/// `maxLineBytes`; past that the stream is refused, since nothing a well-behaved QEMU sends for
/// the commands we issue comes near it. Empty lines are skipped.
public struct QMPLineFramer: Sendable {
    /// 1 MiB: far above any reply to the commands the client sends (`query-qmp-schema` is ~200 KiB).
    public static let defaultMaxLineBytes = 1 << 20

    public let maxLineBytes: Int
    private var buffer: [UInt8] = []
    /// How much of `buffer` is known to hold no line feed.
    private var scanned = 0

    public init(maxLineBytes: Int = QMPLineFramer.defaultMaxLineBytes) {
        self.maxLineBytes = maxLineBytes
    }

    /// Adds `bytes` and returns the complete lines they finish, without CR and LF.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(QMPLineTooLong) -> [[UInt8]] {
        buffer.append(contentsOf: bytes)
        var lines: [[UInt8]] = []
        var start = 0
        var index = scanned
        while index < buffer.count {
            if buffer[index] == UInt8(ascii: "\n") {
                var end = index
                if end > start && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                if end - start > maxLineBytes { throw QMPLineTooLong(limit: maxLineBytes) }
                if end > start { lines.append(Array(buffer[start..<end])) }
                start = index + 1
            }
            index += 1
        }
        buffer.removeFirst(start)
        scanned = buffer.count
        // A pending CR may still be the end of a line of exactly the limit.
        let pending = buffer.last == UInt8(ascii: "\r") ? buffer.count - 1 : buffer.count
        if pending > maxLineBytes { throw QMPLineTooLong(limit: maxLineBytes) }
        return lines
    }

    /// Bytes received after the last complete line.
    public var pendingByteCount: Int { buffer.count }
}
