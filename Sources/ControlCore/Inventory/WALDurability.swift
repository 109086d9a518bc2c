import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Group commit for the inventory. SQLite runs in WAL mode with `synchronous = NORMAL`: a commit
/// appends its pages to the `-wal` file without waiting for the disk, and each caller that must
/// not lose its transaction (every API answer) then awaits ``flush()``. One `fdatasync` of the WAL
/// covers every transaction committed before it started, so concurrent writers share one disk
/// flush instead of paying one each — the same durability as `synchronous = FULL` (a committed,
/// acknowledged change survives a power cut), at the cost of one flush per batch.
///
/// The flushes run on a dedicated thread, never on the cooperative pool.
public final class WALDurability: Sendable {
    /// The `-wal` file beside the database.
    public let walPath: String
    private let shared = Shared()

    private struct State {
        var waiting: [CheckedContinuation<Void, any Error>] = []
        var closed = false
        var flushes = 0
    }

    /// What the callers and the flush thread share.
    private final class Shared: Sendable {
        let state = Mutex(State())
        let wake = DispatchSemaphore(value: 0)
    }

    public init(databasePath: String) {
        walPath = databasePath + "-wal"
        let thread = Thread { [shared, walPath] in
            Self.loop(shared, walPath: walPath)
        }
        thread.start()
    }

    deinit { close() }

    /// Returns once every transaction committed before the call is on disk.
    /// - Throws: ``WALFlushError`` when the flush fails (the change may not survive a power cut).
    public func flush() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let accepted = shared.state.withLock { state -> Bool in
                guard !state.closed else { return false }
                state.waiting.append(continuation)
                return true
            }
            if accepted {
                shared.wake.signal()
            } else {
                continuation.resume(throwing: WALFlushError(path: walPath, errno: EBADF))
            }
        }
    }

    /// Disk flushes done so far (each covers one batch of waiters).
    public var flushCount: Int { shared.state.withLock { $0.flushes } }

    /// Stops the flush thread after the waiters already queued.
    public func close() {
        shared.state.withLock { $0.closed = true }
        shared.wake.signal()
    }

    private static func loop(_ shared: Shared, walPath: String) {
        var file = WALFile(path: walPath)
        while true {
            shared.wake.wait()
            let (batch, closed) = shared.state.withLock { state in
                defer { state.waiting.removeAll(keepingCapacity: true) }
                return (state.waiting, state.closed)
            }
            if !batch.isEmpty {
                let result = Result { try file.sync() }
                shared.state.withLock { $0.flushes += 1 }
                for waiter in batch { waiter.resume(with: result) }
            }
            if closed { break }
        }
        file.close()
    }
}

/// The WAL file, reopened when SQLite replaced it (a different inode behind the same path).
private struct WALFile {
    let path: String
    var fd: Int32 = -1
    var inode: ino_t = 0

    init(path: String) { self.path = path }

    mutating func sync() throws {
        var current = stat()
        guard stat(path, &current) == 0 else {
            // No WAL file: every commit has been checkpointed into the database file, which
            // SQLite flushes itself when it checkpoints.
            if errno == ENOENT { return }
            throw WALFlushError(path: path, errno: errno)
        }
        if fd < 0 || current.st_ino != inode {
            close()
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw WALFlushError(path: path, errno: errno) }
            inode = current.st_ino
        }
        guard fdatasync(fd) == 0 else { throw WALFlushError(path: path, errno: errno) }
    }

    mutating func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}

/// The inventory's write-ahead log could not be flushed to disk.
public struct WALFlushError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var errno: Int32
    public var description: String { "\(path): fdatasync failed: \(String(cString: strerror(errno)))" }
}
