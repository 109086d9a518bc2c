import CShims
import Glibc
import LinuxSys

struct DeadlineExceeded: Error, CustomStringConvertible {
    let seconds: Int
    var description: String { "no result within \(seconds) s" }
}

/// Runs `body`, failing if it has not finished within `seconds` (a safety net, not a timing assertion).
func withDeadline<T: Sendable>(
    _ seconds: Int = 60, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw DeadlineExceeded(seconds: seconds)
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw DeadlineExceeded(seconds: seconds) }
        return first
    }
}

struct SpawnFailed: Error { let code: Int32 }

/// posix_spawn of `argv` (absolute path first); `stdoutFD` becomes the child's stdout and stderr.
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

/// Number of open descriptors of this process.
func openFDCount() -> Int {
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while readdir(dir) != nil { count += 1 }
    return count - 3  // ".", ".." and the directory's own descriptor
}

/// Whether the process still exists, running or as an unreaped zombie. Compares the start time,
/// so a later process that reuses the pid does not count.
func stillExists(_ identity: ProcessIdentity) -> Bool {
    identity.isAlive()
}

/// Waits until `pid` runs the program named `comm` (its exec is done, so signals reach it).
func awaitExec(_ pid: pid_t, comm: String) async throws {
    try await withDeadline {
        while (try? readProcFile("/proc/\(pid)/comm")) != comm + "\n" {
            try await Task.sleep(for: .milliseconds(1))
        }
    }
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

    var pid: pid_t { identity.pid }

    func pidfd() throws -> FileDescriptor { try handle.duplicate() }

    @discardableResult
    func signal(_ signal: Int32) -> Int32 { qx_pidfd_send_signal(handle.rawValue, signal) }

    deinit { _ = qx_pidfd_send_signal(handle.rawValue, SIGKILL) }
}

private func LinuxSysPidfd(_ pid: pid_t) throws -> FileDescriptor { try pidfd(of: pid) }
