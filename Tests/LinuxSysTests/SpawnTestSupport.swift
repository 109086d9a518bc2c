import CShims
import Glibc
import Testing
@testable import LinuxSys

/// Shared fixtures of the launcher tests: the qx-probe binary, pipes, /proc readers.
enum SpawnFixture {
    static let isRoot = getuid() == 0

    /// `qx-probe`, built next to the test bundle.
    static let probePath: String = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        var components = exe.split(separator: "/", omittingEmptySubsequences: false)
        // …/debug/qaraxPackageTests.xctest (a file) or …/debug/x.xctest/Contents/… on other layouts.
        while let last = components.last, !last.hasSuffix(".xctest") { components.removeLast() }
        components.removeLast()
        return components.joined(separator: "/") + "/qx-probe"
    }()

    static func unique(_ prefix: String) -> String {
        "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    static func probePlan(_ arguments: String...) -> SpawnPlan {
        SpawnPlan(executable: probePath, arguments: [probePath] + arguments)
    }

    /// Key → value of `/proc/PID/status`.
    static func status(_ pid: Int32) throws -> [String: String] {
        var fields: [String: String] = [:]
        for line in try readProcFile("/proc/\(pid)/status").split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" }))
        }
        return fields
    }

    /// Names in a directory, `.` and `..` left out.
    static func directoryEntries(_ path: String) -> Set<String> {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: Set<String> = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.insert(name) }
        }
        return names
    }

    static func readLink(_ path: String) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink(path, &buffer, buffer.count - 1)
        return length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    }

    /// Reads `fd` to EOF on a dedicated thread.
    static func readToEnd(_ fd: Int32) async -> String {
        await SpawnThread.run {
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                bytes += chunk[0..<n]
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Waits for the exit on a dedicated thread and reaps.
    static func exit(of process: borrowing SpawnedProcess) async throws -> SpawnedProcess.Exit {
        let pidfd = process.pidfd.rawValue
        return try await SpawnThread.run { () -> Result<SpawnedProcess.Exit, SystemError> in
            var code: Int32 = 0
            var status: Int32 = 0
            let result = qx_pidfd_wait(pidfd, &code, &status)
            if result < 0 { return .failure(SystemError("waitid", negated: result)) }
            return .success(SpawnedProcess.exit(code: code, status: status))
        }.get()
    }

    /// Launches `qx-probe block` (stdin on a pipe this function holds) under `plan`, runs `body`
    /// with its pid, then closes the pipe and expects the probe to exit 0 — even when `body` throws.
    static func withBlockingProbe(_ plan: SpawnPlan, _ body: (Int32) async throws -> Void) async throws {
        var plan = plan
        var stdin = try Pipe()
        plan.fileDescriptors[0] = stdin.read
        let process = try await Launcher.launch(plan)
        stdin.closeRead()
        var failure: (any Error)?
        do {
            try await body(process.pid)
        } catch {
            failure = error
        }
        stdin.closeWrite()
        let exit = try await Self.exit(of: process)
        #expect(exit == .exited(0), "the probe should see EOF and exit 0")
        if let failure { throw failure }
    }

    /// Removes a directory tree (mount points of a finished jail).
    static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            for name in directoryEntries(path) { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

/// A close-on-exec pipe whose ends are closed independently, each exactly once.
struct Pipe: ~Copyable {
    let read: Int32
    let write: Int32
    private var readOpen = true
    private var writeOpen = true

    init() throws {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) < 0 { throw SystemError("pipe", errno: errno) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        read = fds[0]
        write = fds[1]
    }

    mutating func closeRead() {
        if readOpen { Glibc.close(read) }
        readOpen = false
    }

    mutating func closeWrite() {
        if writeOpen { Glibc.close(write) }
        writeOpen = false
    }

    deinit {
        if readOpen { Glibc.close(read) }
        if writeOpen { Glibc.close(write) }
    }
}
