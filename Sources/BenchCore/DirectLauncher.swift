import CShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a direct (baseline) boot failed: the step and the errno or the reason.
public struct DirectLaunchError: Error, CustomStringConvertible, Sendable {
    public let step: String
    public let reason: String
    public var description: String { "direct launch: \(step): \(reason)" }

    init(_ step: String, errno code: Int32) {
        self.step = step
        reason = String(cString: strerror(code)) + " (errno \(code))"
    }

    init(_ step: String, _ reason: String) {
        self.step = step
        self.reason = reason
    }
}

/// The baseline: the VMM binary started with `posix_spawn` and the same arguments, without a
/// jail, host preparation, supervision or node bookkeeping. Every step is a blocking call, so a
/// boot runs on its own thread.
public struct DirectLauncher: Sendable {
    public enum Mode: Sendable {
        /// cloud-hypervisor (or ch-sim): `--api-socket fd=3`, then `vm.create` and `vm.boot` over
        /// the socket (the same REST path the node takes).
        case cloudHypervisor(createBody: [UInt8])
        /// QEMU: the node's command line without `-S` (the guest starts at once), serial on stdout.
        case qemu
    }

    public let binary: String
    /// argv without the program name.
    public let arguments: [String]
    public let mode: Mode
    /// Stops the VMM after the marker (SIGTERM) instead of waiting for the guest to power off.
    public let terminateAfterMarker: Bool
    public let scratchDirectory: String
    public let marker: String
    public let deadline: Duration

    public init(binary: String, arguments: [String], mode: Mode, terminateAfterMarker: Bool,
                scratchDirectory: String, marker: String = "QARAX-GUEST-READY", deadline: Duration = .seconds(30)) {
        self.binary = binary
        self.arguments = arguments
        self.mode = mode
        self.terminateAfterMarker = terminateAfterMarker
        self.scratchDirectory = scratchDirectory
        self.marker = marker
        self.deadline = deadline
    }

    /// One boot on a dedicated thread; `index` names its socket.
    public func boot(index: Int) async throws -> BootSample {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BootSample, any Error>) in
            let thread = Thread {
                do { continuation.resume(returning: try self.bootBlocking(index: index)) } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "qarax-bench-direct"
            thread.start()
        }
    }

    func bootBlocking(index: Int) throws -> BootSample {
        let timeline = BootTimeline()
        let socketPath = scratchDirectory + "/direct-\(index)-\(getpid()).sock"
        unlink(socketPath)
        defer { unlink(socketPath) }
        let listener = try Self.listen(socketPath)
        defer { close(listener) }
        var out: [Int32] = [-1, -1]
        let piped: Int32 = out.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return -EINVAL }
            return qx_pipe2_cloexec(base)
        }
        guard piped >= 0 else { throw DirectLaunchError("pipe2", errno: -piped) }
        defer { close(out[0]) }
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devnull) }
        let pid: pid_t
        do {
            defer { close(out[1]) }
            pid = try Self.spawn(binary, [binary] + arguments, fds: [0: devnull, 1: out[1], 2: devnull, 3: listener])
        }
        timeline.mark(.vmmSpawned)
        var reaped = false
        defer {
            if !reaped {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
        }
        if case .cloudHypervisor(let body) = mode {
            try Self.put(socketPath, "/api/v1/vm.create", body: body)
            timeline.mark(.created)
            try Self.put(socketPath, "/api/v1/vm.boot", body: [])
            timeline.mark(.bootReturned)
        }
        var scanner = MarkerScanner(marker)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let limit = ContinuousClock.now + deadline
        while true {
            var pfd = pollfd(fd: out[0], events: Int16(POLLIN), revents: 0)
            let left = Int32(clamping: max(0, Int64(BootTimeline.milliseconds(limit - .now))))
            let ready = poll(&pfd, 1, left)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { throw DirectLaunchError("await the ready marker", "not seen within \(deadline)") }
            let n = buffer.withUnsafeMutableBytes { read(out[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw DirectLaunchError("await the ready marker", "the VMM closed its output first") }
            let hit = buffer.withUnsafeBytes { scanner.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            if hit {
                timeline.mark(.readyMarker)
                break
            }
        }
        if terminateAfterMarker { kill(pid, SIGTERM) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw DirectLaunchError("waitpid", errno: errno) }
        }
        reaped = true
        timeline.mark(.shutdownComplete)
        return timeline.sample
    }

    static func listen(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DirectLaunchError("socket", errno: errno) }
        var address = try unixAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 16) == 0 else {
            let code = errno
            close(fd)
            throw DirectLaunchError("bind/listen \(path)", errno: code)
        }
        return fd
    }

    static func unixAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw DirectLaunchError("socket path \(path)", "longer than sun_path")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return address
    }

    /// `posix_spawn` with `fds` (child number → parent descriptor) and an empty environment.
    static func spawn(_ path: String, _ argv: [String], fds: [Int32: Int32]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (child, parent) in fds.sorted(by: { $0.key < $1.key }) {
            posix_spawn_file_actions_adddup2(&actions, parent, child)
        }
        let cArgs = argv.map { strdup($0) }
        defer { cArgs.forEach { free($0) } }
        var argvPointers = cArgs + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = [nil]
        // The calling thread may block or ignore signals; the VMM starts with none blocked and
        // default dispositions, as the node's launcher gives it.
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
        let rc = posix_spawn(&pid, path, &actions, &attributes, &argvPointers, &envp)
        guard rc == 0 else { throw DirectLaunchError("posix_spawn \(path)", errno: rc) }
        return pid
    }

    /// One `PUT` on a fresh connection; throws unless the status is 2xx.
    static func put(_ socketPath: String, _ path: String, body: [UInt8]) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DirectLaunchError("socket", errno: errno) }
        defer { close(fd) }
        var address = try unixAddress(socketPath)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw DirectLaunchError("connect \(socketPath)", errno: errno) }
        var request = Array("PUT \(path) HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n".utf8)
        if !body.isEmpty { request += Array("Content-Type: application/json\r\n".utf8) }
        request += Array("Content-Length: \(body.count)\r\n\r\n".utf8) + body
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { raw in
                send(fd, UnsafeRawBufferPointer(rebasing: raw[sent...]).baseAddress, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw DirectLaunchError("send \(path)", errno: errno) }
            sent += n
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while response.count < 65_536 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            response += chunk[0..<n]
            if let complete = responseComplete(response) {
                guard (200..<300).contains(complete.status) else {
                    throw DirectLaunchError("PUT \(path)", "status \(complete.status): \(String(decoding: complete.body, as: UTF8.self))")
                }
                return
            }
        }
        throw DirectLaunchError("PUT \(path)", "incomplete response")
    }

    /// The status and body once the header and `Content-Length` bytes of body are in.
    static func responseComplete(_ bytes: [UInt8]) -> (status: Int, body: [UInt8])? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4, let end = (0...(bytes.count - 4)).first(where: { bytes[$0..<($0 + 4)].elementsEqual(separator) }) else { return nil }
        let head = String(decoding: bytes[0..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first else { return nil }
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var length = 0
        for line in lines.dropFirst() {
            let pair = line.split(separator: ":", maxSplits: 1)
            if pair.count == 2, pair[0].lowercased() == "content-length" {
                length = Int(pair[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        let bodyStart = end + 4
        guard bytes.count >= bodyStart + length else { return nil }
        return (status, Array(bytes[bodyStart..<(bodyStart + length)]))
    }
}
