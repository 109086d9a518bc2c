import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Waits for a console log to grow, for long-polled console follows: inotify on the log's directory
/// wakes the wait; a one-second backstop re-checks the size for what inotify cannot see (the
/// directory appearing at start). Blocks: call it on a dedicated thread.
enum ConsoleGrowth {
    /// Returns once the file at `path` is longer than `offset`, or after `limit`.
    static func wait(path: String, beyond offset: Int64, limit: Duration) {
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        let notify = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        defer { if notify >= 0 { close(notify) } }
        let directory = (path as NSString).deletingLastPathComponent
        var watching = false
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            if notify >= 0 && !watching {
                watching = inotify_add_watch(notify, directory, UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO)) >= 0
            }
            var info = stat()
            if stat(path, &info) == 0 && Int64(info.st_size) > offset { return }
            let left = deadline - clock.now
            guard left > .zero else { return }
            let slice = min(left, .seconds(1))
            let (seconds, attoseconds) = slice.components
            let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            var fd = pollfd(fd: notify, events: Int16(POLLIN), revents: 0)
            if notify >= 0 {
                let ready = poll(&fd, 1, milliseconds)
                if ready > 0 { while read(notify, &scratch, scratch.count) > 0 {} }
            } else {
                _ = poll(nil, 0, milliseconds)
            }
        }
    }
}
