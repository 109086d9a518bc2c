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
            try await Task.sleep(for: .seconds(seconds))  // allowed: deadline timer, not a wait
            throw DeadlineExceeded(seconds: seconds)
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw DeadlineExceeded(seconds: seconds) }
        return first
    }
}

struct SpawnFailed: Error { let code: Int32 }

/// posix_spawn of `argv` (absolute path first); `stdoutFD` becomes the child's stdout and stderr.
///
/// glibc's posix_spawn clones with CLONE_VFORK and returns only once the child has exec'd (or
/// failed to), so the returned pid already runs `argv[0]`: a signal sent now meets that program.
func spawn(_ argv: [String], stdoutFD: Int32? = nil) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
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

/// Starts `/bin/sh -c "<setup> && echo ready && exec <program>"` and returns once the shell has
/// printed `ready`, i.e. once `setup` (a `ulimit`, a `trap`) is in effect. Whatever a test sends
/// afterwards meets either the shell on its way to exec or `program`, and both carry what `setup`
/// put in place (limits and ignored signals survive exec). The output pipe is read through the
/// reactor; `program` gets /dev/null as stdout and stderr.
func spawnAfterSetup(_ setup: String, exec program: String) async throws -> pid_t {
    let pipe = try PipePair()
    let pid = try spawn(["/bin/sh", "-c", "\(setup) && echo ready && exec \(program) >/dev/null 2>&1"],
                        stdoutFD: pipe.writeEnd.rawValue)
    let handle = try pidfd(of: pid)
    let output = try pipe.readEnd.duplicate()
    _ = consume pipe
    do {
        let line = try await firstLine(of: output)
        guard line == "ready" else { throw SetupFailed(script: setup, output: line) }
    } catch {
        killIfAlive(handle)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        throw error
    }
    return pid
}

struct SetupFailed: Error, CustomStringConvertible {
    let script: String
    let output: String
    var description: String { "`\(script)` failed: \(output.debugDescription)" }
}

/// The first line `fd` yields (without its newline), or everything up to end-of-file.
func firstLine(of fd: consuming FileDescriptor) async throws -> String {
    let chunks = try Reactor.shared().chunks(of: fd)
    return try await withDeadline {
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

/// Kills the process behind `pidfd` if still there (cleanup on test failure; never hits a reused pid).
func killIfAlive(_ pidfd: borrowing FileDescriptor) {
    _ = qx_pidfd_send_signal(pidfd.rawValue, SIGKILL)
}
