import CShims
import Glibc
import LinuxSys
import Testing

struct SpawnFailed: Error { let code: Int32 }

/// posix_spawn of `argv` (absolute path first); `stdoutFD` becomes the child's stdout and stderr.
///
/// glibc's posix_spawn clones with CLONE_VFORK and returns only once the child has exec'd (or
/// failed to), so the returned pid already runs `argv[0]`: a signal sent now meets that program.
func spawn(_ argv: [String], stdoutFD: Int32? = nil, stdinFD: Int32? = nil) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let stdinFD { posix_spawn_file_actions_adddup2(&actions, stdinFD, 0) }
    if let stdoutFD {
        posix_spawn_file_actions_adddup2(&actions, stdoutFD, 1)
        posix_spawn_file_actions_adddup2(&actions, stdoutFD, 2)
    } else {
        // Never the test runner's own output: a leftover child would hold it open.
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    }
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
    cArgs.append(nil)
    defer { for arg in cArgs { free(arg) } }
    // The test runner's threads block some signals (SIGTERM among them); children start clean.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, environ)
    if rc != 0 { throw SpawnFailed(code: rc) }
    return pid
}

func pidfd(of pid: pid_t) throws -> FileDescriptor {
    let fd = qx_pidfd_open(pid, 0)
    if fd < 0 { throw SystemError("pidfd_open(\(pid))", negated: fd) }
    return FileDescriptor(adopting: fd)
}

/// What an open descriptor of this process refers to.
struct OpenDescriptor: CustomStringConvertible {
    let number: Int32
    let file: FileIdentity
    /// The `/proc/self/fd` link: a path, or e.g. `anon_inode:[pidfd]`.
    let target: String
    var description: String { "fd \(number) → \(target)" }
}

/// A file by device and inode. Every pidfd of one process shares its pidfs inode (Linux 6.9+), so
/// this names the process behind a pidfd even after it was reaped.
struct FileIdentity: Hashable {
    let device: UInt64
    let inode: UInt64

    init(of fd: Int32) throws {
        var st = stat()
        if fstat(fd, &st) < 0 { throw SystemError("fstat(\(fd))", errno: errno) }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }

    init?(path: String) {
        var st = stat()
        if stat(path, &st) < 0 { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}

/// Every descriptor open in this process right now (descriptors that close meanwhile are skipped).
func openDescriptors() -> [OpenDescriptor] {
    listDirectory("/proc/self/fd").compactMap { name in
        guard let number = Int32(name) else { return nil }
        let link = "/proc/self/fd/\(name)"
        guard let file = FileIdentity(path: link) else { return nil }
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink(link, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return OpenDescriptor(number: number, file: file, target: target)
    }
}

/// Whether the process still exists, running or as an unreaped zombie. Compares the start time,
/// so a later process that reuses the pid does not count.
func stillExists(_ identity: ProcessIdentity) -> Bool {
    identity.isAlive()
}

/// Kills the process behind `pidfd` if still there (cleanup on test failure; never hits a reused pid).
func killIfAlive(_ pidfd: borrowing FileDescriptor) {
    _ = qx_pidfd_send_signal(pidfd.rawValue, SIGKILL)
}

/// A fresh, empty directory under /tmp, removed (with its contents) by `removeTree`.
func makeTemporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/qarax-\(prefix)-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { buffer -> Bool in
        guard let base = buffer.baseAddress else { return false }
        return mkdtemp(base) != nil
    }
    if !made { throw SystemError("mkdtemp", errno: errno) }
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Removes a directory holding only plain files.
func removeTree(_ path: String) {
    for name in listDirectory(path) { unlink("\(path)/\(name)") }
    rmdir(path)
}

func listDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

func fileSize(_ path: String) -> Int? {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_size) : nil
}

/// A started child. Holds a pidfd of its own, through which it kills the child when released, so
/// nothing outlives a failed test; `pidfd()` gives the supervisor another one.
final class Child: Sendable {
    let identity: ProcessIdentity
    private let handle: FileDescriptor

    init(_ argv: [String], stdoutFD: Int32? = nil, stdinFD: Int32? = nil) throws {
        let pid = try spawn(argv, stdoutFD: stdoutFD, stdinFD: stdinFD)
        handle = try LinuxSysPidfd(pid)
        identity = try ProcessIdentity.of(pid: pid)
    }

    /// Starts `/bin/sh -c "<setup> && echo ready && exec <program>"` and returns once the shell has
    /// printed `ready`, i.e. once `setup` (a `ulimit`, a `trap`) is in effect. Whatever a test sends
    /// afterwards meets either the shell on its way to exec or `program`, and both carry what `setup`
    /// put in place (limits and ignored signals survive exec). The output pipe is read through the
    /// reactor; `program` gets /dev/null as stdout and stderr.
    static func afterSetup(_ setup: String, exec program: String) async throws -> Child {
        let pipe = try PipePair()
        let child = try Child(["/bin/sh", "-c", "\(setup) && echo ready && exec \(program) >/dev/null 2>&1"],
                              stdoutFD: pipe.writeEnd.rawValue)
        let output = try pipe.readEnd.duplicate()
        _ = consume pipe
        let line = try await firstLine(of: output)
        guard line == "ready" else { throw SetupFailed(script: setup, output: line) }
        return child
    }

    var pid: pid_t { identity.pid }

    /// The pidfs inode behind every pidfd of this child.
    func pidfdIdentity() throws -> FileIdentity { try FileIdentity(of: handle.rawValue) }

    func pidfd() throws -> FileDescriptor { try handle.duplicate() }

    @discardableResult
    func signal(_ signal: Int32) -> Int32 { qx_pidfd_send_signal(handle.rawValue, signal) }

    deinit { _ = qx_pidfd_send_signal(handle.rawValue, SIGKILL) }
}

struct SetupFailed: Error, CustomStringConvertible {
    let script: String
    let output: String
    var description: String { "`\(script)` failed: \(output.debugDescription)" }
}

/// The first line `fd` yields (without its newline), or everything up to end-of-file.
func firstLine(of fd: consuming FileDescriptor) async throws -> String {
    let chunks = try Reactor.shared().chunks(of: fd)
    return try await withDeadline(.seconds(60), "first line") {
        var bytes: [UInt8] = []
        for try await chunk in chunks {
            bytes += chunk
            if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                return String(decoding: bytes[..<newline], as: UTF8.self)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Waits until the file at `path` reads exactly `expected`. Reads it once, then again after each
/// inotify report that it was written; the deadline fails a test whose file never gets there.
func awaitFile(_ path: String, toRead expected: String, within limit: Duration = .seconds(60)) async throws {
    let raw = inotify_init1(Int32(IN_CLOEXEC))
    if raw < 0 { throw SystemError("inotify_init1", errno: errno) }
    let inotify = FileDescriptor(adopting: raw)
    if inotify_add_watch(inotify.rawValue, path, UInt32(IN_MODIFY)) < 0 {
        throw SystemError("inotify_add_watch(\(path))", errno: errno)
    }
    let (writes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let registration = try Reactor.shared().read(inotify) { event in
        if case .data = event { continuation.yield() } else { continuation.finish() }
        return .proceed
    }
    defer {
        registration.cancel()
        continuation.finish()
    }
    do {
        try await withDeadline(limit, "\(expected.debugDescription) in \(path)") {
            if (try? readProcFile(path)) == expected { return }
            for await _ in writes where (try? readProcFile(path)) == expected { return }
            throw SystemError("inotify watch of \(path) ended", errno: EIO)
        }
    } catch let error as DeadlineExceeded {
        Issue.record("\(path) holds \(((try? readProcFile(path)) ?? "nothing").debugDescription)")
        throw error
    }
}

private func LinuxSysPidfd(_ pid: pid_t) throws -> FileDescriptor { try pidfd(of: pid) }
