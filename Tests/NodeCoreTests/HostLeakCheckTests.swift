import Foundation
import Glibc
import Testing

private let isRoot = getuid() == 0

/// The leak check must see each kind of leftover, and stop seeing it once it is cleaned up.
@Suite("Leak check finds what a test leaves behind")
struct HostLeakCheckTests {
    @Test("an open descriptor")
    func descriptor() throws {
        let check = LeakCheck()
        let before = check.snapshot()
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        #expect(check.leaks(since: before).contains("descriptor: fd \(fd) -> /dev/null"))
        close(fd)
        #expect(!check.leaks(since: before).contains("descriptor: fd \(fd) -> /dev/null"))
    }

    @Test("a child process still running")
    func childProcess() throws {
        let check = LeakCheck()
        let before = check.snapshot()
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["60"]
        try child.run()
        let entry = "child process: \(child.processIdentifier) (sleep)"
        #expect(check.leaks(since: before).contains(entry))
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        #expect(!check.leaks(since: before).contains(entry))
    }

    @Test("a file and a socket under the runtime root")
    func runtimeFiles() throws {
        let root = "/tmp/qarax-leakcheck-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try #require(mkdir(root, 0o700) == 0)
        defer { rmdir(root) }
        let check = LeakCheck(runtimeRoot: root)
        let before = check.snapshot()
        #expect(before.runtimeFiles.isEmpty)
        try #require(FileManager.default.createFile(atPath: "\(root)/state.json", contents: Data("{}".utf8)))
        let socket = try HostTestSocket(path: "\(root)/api.sock")
        #expect(Set(check.leaks(since: before)).isSuperset(of: [
            "runtime file: file \(root)/state.json", "runtime file: socket \(root)/api.sock",
        ]))
        socket.close(unlinking: "\(root)/api.sock")
        unlink("\(root)/state.json")
        #expect(check.leaks(since: before).filter { $0.hasPrefix("runtime file") }.isEmpty)
    }

    @Test("a qarax cgroup directory", .enabled(if: isRoot && FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids")))
    func cgroup() throws {
        let path = "/sys/fs/cgroup/pids/qarax-leakcheck-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let check = LeakCheck()
        let before = check.snapshot()
        try #require(mkdir(path, 0o755) == 0)
        defer { rmdir(path) }
        #expect(check.leaks(since: before).contains("cgroup: \(path)"))
        rmdir(path)
        #expect(!check.leaks(since: before).contains("cgroup: \(path)"))
    }

    @Test("a link with a qarax: alias in a network namespace", .enabled(if: isRoot))
    func link() throws {
        let netns = "qx-leak-\(getpid() % 100000)-\(UInt16.random(in: 0...UInt16.max))"
        try #require(LeakCheck.run(["/usr/sbin/ip", "netns", "add", netns]) != nil)
        defer { _ = LeakCheck.run(["/usr/sbin/ip", "netns", "delete", netns]) }
        let check = LeakCheck(netns: netns)
        let before = check.snapshot()
        #expect(before.links.isEmpty)
        // Fixture made with ip: the leak check is what is under test here.
        try #require(LeakCheck.run(["/usr/sbin/ip", "-netns", netns, "link", "add", "qxl0", "type", "veth", "peer", "name", "qxl1"]) != nil)
        try #require(LeakCheck.run(["/usr/sbin/ip", "-netns", netns, "link", "set", "qxl0", "alias", "qarax:vm=web1,nic=net0"]) != nil)
        #expect(check.leaks(since: before).filter { $0.hasPrefix("link") } == ["link: qxl0 (qarax:vm=web1,nic=net0)"])
        _ = LeakCheck.run(["/usr/sbin/ip", "-netns", netns, "link", "delete", "qxl0"])
        #expect(check.leaks(since: before).filter { $0.hasPrefix("link") }.isEmpty)
    }
}

/// A listening Unix socket bound at a path, for tests.
struct HostTestSocket {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw POSIXError(.ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 4) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
    }

    /// Closes the socket; its path stays until unlinked.
    func close(unlinking path: String? = nil) {
        Glibc.close(fd)
        if let path { unlink(path) }
    }
}
