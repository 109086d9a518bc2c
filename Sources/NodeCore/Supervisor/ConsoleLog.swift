#if canImport(Glibc)
import Glibc
#endif
import Dispatch
public import LinuxSys
import Synchronization

/// Size cap of a rotated log: at most `fileCount` files of at most `maxFileBytes` each
/// (`console.log`, `console.log.1`, … `console.log.<fileCount-1>`).
public struct LogRotation: Sendable, Hashable, Codable {
    public let maxFileBytes: Int
    public let fileCount: Int

    /// Throws `SupervisorError.invalidValue` naming the field when a value is below 1.
    public init(maxFileBytes: Int, fileCount: Int) throws(SupervisorError) {
        guard maxFileBytes >= 1 else {
            throw .invalidValue(field: "rotation.maxFileBytes", value: "\(maxFileBytes)", reason: "must be at least 1")
        }
        guard fileCount >= 1 else {
            throw .invalidValue(field: "rotation.fileCount", value: "\(fileCount)", reason: "must be at least 1")
        }
        self.maxFileBytes = maxFileBytes
        self.fileCount = fileCount
    }

    /// 4 files of 1 MiB.
    public static let standard = LogRotation(unchecked: 1 << 20, 4)

    private init(unchecked maxFileBytes: Int, _ fileCount: Int) {
        self.maxFileBytes = maxFileBytes
        self.fileCount = fileCount
    }

    /// The most bytes the log's files can hold together.
    public var totalBytes: Int { maxFileBytes * fileCount }
}

/// A file that rotates before it would outgrow its cap. Used by one writer at a time.
final class RotatingLogFile {
    let path: String
    let rotation: LogRotation
    private var fd: Int32
    private var size: Int

    init(path: String, rotation: LogRotation) throws(SystemError) {
        self.path = path
        self.rotation = rotation
        fd = try Self.openAppending(path)
        var st = stat()
        size = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
    }

    deinit { _ = Glibc.close(fd) }

    private static func openAppending(_ path: String, truncate: Bool = false) throws(SystemError) -> Int32 {
        let flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0)
        return try retryingOnInterrupt("open \(path)") { Glibc.open(path, flags, 0o640) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            if size >= rotation.maxFileBytes { try rotate() }
            let chunk = min(rotation.maxFileBytes - size, bytes.count - offset)
            let n = Glibc.write(fd, bytes.baseAddress.map { $0 + offset }, chunk)
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw SystemError("write \(path)", errno: Glibc.errno)
            }
            offset += n
            size += n
        }
    }

    /// `path.k` becomes `path.k+1` (the oldest is removed) and `path` becomes `path.1`.
    private func rotate() throws(SystemError) {
        _ = Glibc.close(fd)
        fd = -1
        if rotation.fileCount == 1 {
            fd = try Self.openAppending(path, truncate: true)
        } else {
            let last = rotation.fileCount - 1
            if unlink("\(path).\(last)") < 0 && Glibc.errno != ENOENT {
                throw SystemError("unlink \(path).\(last)", errno: Glibc.errno)
            }
            for k in stride(from: last - 1, through: 1, by: -1) {
                if rename("\(path).\(k)", "\(path).\(k + 1)") < 0 && Glibc.errno != ENOENT {
                    throw SystemError("rename \(path).\(k)", errno: Glibc.errno)
                }
            }
            if rename(path, "\(path).1") < 0 && Glibc.errno != ENOENT {
                throw SystemError("rename \(path)", errno: Glibc.errno)
            }
            fd = try Self.openAppending(path)
        }
        size = 0
    }
}

/// A VM's console or serial log: bytes come from the reactor thread, which never waits; a writer
/// queue puts them on disk. When the disk falls behind and the in-memory buffer is full, new bytes
/// are dropped and a `[qarax: dropped N bytes]` line marks the gap in the file.
public final class ConsoleLog: Sendable {
    /// The one queue that writes every log file, off the reactor thread and the cooperative pool.
    static let writerQueue = DispatchQueue(label: "qarax.console-log", qos: .utility)

    private struct State: ~Copyable {
        var buffer: [UInt8] = []
        var droppedSinceMark: UInt64 = 0
        var droppedTotal: UInt64 = 0
        var drainScheduled = false
        var lastError: SystemError?
    }

    public let path: String
    public let bufferLimit: Int
    private let state = Mutex(State())
    private let queue: DispatchQueue
    // Only touched on `queue`.
    private nonisolated(unsafe) let file: RotatingLogFile

    /// Opens (creating) `path`; `bufferLimit` bounds the bytes held in memory awaiting the disk.
    public convenience init(path: String, rotation: LogRotation, bufferLimit: Int = 256 * 1024) throws(SystemError) {
        try self.init(path: path, rotation: rotation, bufferLimit: bufferLimit, queue: ConsoleLog.writerQueue)
    }

    init(path: String, rotation: LogRotation, bufferLimit: Int, queue: DispatchQueue) throws(SystemError) {
        self.path = path
        self.bufferLimit = max(1, bufferLimit)
        self.queue = queue
        file = try RotatingLogFile(path: path, rotation: rotation)
    }

    /// Bytes dropped so far because the buffer was full or the disk failed.
    public var droppedBytes: UInt64 { state.withLock { $0.droppedTotal } }

    /// The last write error, if any.
    public var lastError: SystemError? { state.withLock { $0.lastError } }

    /// Takes bytes without ever blocking; what does not fit is counted as dropped.
    public func append(_ bytes: UnsafeRawBufferPointer) {
        let schedule = state.withLock { s -> Bool in
            let room = max(0, bufferLimit - s.buffer.count)
            let taken = min(room, bytes.count)
            s.buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<taken]))
            let dropped = UInt64(bytes.count - taken)
            s.droppedSinceMark += dropped
            s.droppedTotal += dropped
            guard !s.drainScheduled else { return false }
            s.drainScheduled = true
            return true
        }
        if schedule { queue.async { self.drain() } }
    }

    /// Waits until every byte appended before the call is on disk (or dropped).
    public func flush() async {
        let done = OneShot<Bool>()
        queue.async { done.set(true) }
        _ = await done.wait()
    }

    private func drain() {
        while true {
            let (bytes, dropped) = state.withLock { s -> ([UInt8], UInt64) in
                let taken = (s.buffer, s.droppedSinceMark)
                s.buffer = []
                s.droppedSinceMark = 0
                if taken.0.isEmpty && taken.1 == 0 { s.drainScheduled = false }
                return taken
            }
            if bytes.isEmpty && dropped == 0 { return }
            write(bytes)
            if dropped > 0 { write(Array("\n[qarax: dropped \(dropped) bytes]\n".utf8)) }
        }
    }

    private func write(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        let failure = bytes.withUnsafeBytes { raw -> SystemError? in
            do throws(SystemError) {
                try file.write(raw)
                return nil
            } catch {
                return error
            }
        }
        if let error = failure {
            state.withLock { s in
                s.lastError = error
                s.droppedTotal += UInt64(bytes.count)
            }
        }
    }
}
