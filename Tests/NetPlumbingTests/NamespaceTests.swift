import LinuxSys
import Testing
@testable import NetPlumbing
#if canImport(Glibc)
import Glibc
#endif

func inode(_ path: String) -> UInt64? {
    var st = stat()
    return stat(path, &st) == 0 ? UInt64(st.st_ino) : nil
}

/// Names in `path`, sorted, without `.` and `..`.
func directoryEntries(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

@Suite(.enabled(if: isRoot, rootReason)) struct NamespaceTests {
    @Test func workRunsInsideTheNamespaceWithItsOwnSysfs() async throws {
        try await withScratchNamespace { ns in
            let expected = try #require(inode(ns.filePath))
            #expect(expected != inode("/proc/self/ns/net"))
            let (seen, sysfsLinks) = try await ns.perform { () -> (UInt64?, [String]) in
                (inode("/proc/thread-self/ns/net"), directoryEntries("/sys/class/net"))
            }
            #expect(seen == expected)
            // A fresh namespace has only lo; the host's own links do not show through.
            #expect(sysfsLinks == ["lo"])
            #expect(directoryEntries("/sys/class/net").count > 1)
            // The caller's thread never moved.
            #expect(inode("/proc/thread-self/ns/net") == inode("/proc/self/ns/net"))
            let links = try await plumbing.links(in: ns)
            #expect(links.map(\.name) == ["lo"])
        }
    }

    @Test func currentNamespaceWorkStaysInTheProcesssNamespace() async throws {
        let seen = try await NetworkNamespace.current.perform { inode("/proc/thread-self/ns/net") }
        #expect(seen == inode("/proc/self/ns/net"))
    }

    @Test func createTwiceAndDeleteTwiceAreRefused() async throws {
        let name = uniqueName()
        let ns = try await NetworkNamespace.create(named: name)
        defer { try? NetworkNamespace.delete(named: name) }
        await #expect(throws: NetworkNamespaceError.alreadyExists(ns)) { _ = try await NetworkNamespace.create(named: name) }
        try NetworkNamespace.delete(named: name)
        #expect(access(ns.filePath, F_OK) != 0)
        #expect(throws: NetworkNamespaceError.notFound(ns)) { try NetworkNamespace.delete(named: name) }
        await #expect(throws: NetPlumbingError.namespace(.notFound(ns))) { _ = try await plumbing.links(in: ns) }
    }

    @Test(arguments: [("", "is empty"), ("..", "is reserved"), ("a/b", "contains '/'")])
    func badNamesAreRefused(name: String, reason: String) async {
        await #expect(throws: NetworkNamespaceError.invalidName(name, reason: reason)) {
            _ = try await NetworkNamespace.create(named: name)
        }
        await #expect(throws: NetPlumbingError.namespace(.invalidName(name, reason: reason))) {
            _ = try await plumbing.links(in: .named(name))
        }
    }

    @Test func aRecreatedNameGetsAFreshThread() async throws {
        let name = uniqueName()
        _ = try await NetworkNamespace.create(named: name)
        _ = try await plumbing.createBridge(BridgeRequest(name: "br0"), in: .named(name))
        try NetworkNamespace.delete(named: name)
        _ = try await NetworkNamespace.create(named: name)
        defer { try? NetworkNamespace.delete(named: name) }
        #expect(try await plumbing.links(in: .named(name)).map(\.name) == ["lo"])
    }

    @Test(.enabled(if: access("/usr/sbin/ip", X_OK) == 0, "needs iproute2's ip to act from outside qarax"))
    func aNamespaceReplacedBehindOurBackIsFollowed() async throws {
        let name = uniqueName()
        try #require(runIP(["netns", "add", name]) == 0)
        defer { _ = runIP(["netns", "del", name]) }
        _ = try await plumbing.createBridge(BridgeRequest(name: "old0"), in: .named(name))
        try #require(runIP(["netns", "del", name]) == 0)
        await #expect(throws: NetPlumbingError.namespace(.notFound(.named(name)))) {
            _ = try await plumbing.links(in: .named(name))
        }
        try #require(runIP(["netns", "add", name]) == 0)
        #expect(try await plumbing.links(in: .named(name)).map(\.name) == ["lo"])
        try #require(runIP(["netns", "del", name]) == 0)
        try #require(runIP(["netns", "add", name]) == 0)
        _ = try await plumbing.createBridge(BridgeRequest(name: "new0"), in: .named(name))
        #expect(try await plumbing.links(in: .named(name)).map(\.name) == ["lo", "new0"])
        NetworkNamespace.named(name).releaseThread()
    }
}

/// SO_NETNS_COOKIE: the cookie of a socket's network namespace.
let soNetnsCookie: Int32 = 71

func netnsCookie(ofSocket fd: Int32) -> UInt64? {
    var cookie: UInt64 = 0
    var length = socklen_t(MemoryLayout<UInt64>.size)
    return getsockopt(fd, SOL_SOCKET, soNetnsCookie, &cookie, &length) == 0 ? cookie : nil
}

/// Descriptors of this process that belong to one test: netlink sockets of the namespace with
/// `cookie`, tun fds attached to `tapName`, and anything opened under `directory`.
func descriptorsOf(netnsCookie cookie: UInt64, tapName: String, directory: String) -> Int {
    var count = 0
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let fd = Int32(name) else { continue }
        var domain: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 {
            if domain == AF_NETLINK && netnsCookie(ofSocket: fd) == cookie { count += 1 }
            continue
        }
        var target = [CChar](repeating: 0, count: 512)
        let n = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
        guard n > 0 else { continue }
        let path = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasPrefix(directory + "/") {
            count += 1
        } else if path == "/dev/net/tun", let info = try? readProcFile("/proc/self/fdinfo/\(name)"),
                  info.contains("iff:\t\(tapName)\n") {
            count += 1
        }
    }
    return count
}

@Suite(.enabled(if: isRoot, rootReason)) struct DescriptorLeakTests {
    @Test func nothingStaysOpenAfterAFullCycle() async throws {
        let name = uniqueName()
        let ns = try await NetworkNamespace.create(named: name)
        var deleted = false
        defer { if !deleted { try? NetworkNamespace.delete(named: name) } }
        try await withScratchDirectory { dir in
            let cookie = try await ns.perform { () throws -> UInt64? in
                let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue), 0)
                defer { close(fd) }
                return netnsCookie(ofSocket: fd)
            }
            let nsCookie = try #require(cookie)
            let tapName = "leak0"
            let count = { descriptorsOf(netnsCookie: nsCookie, tapName: tapName, directory: dir) }
            #expect(count() == 0)
            for round in 0..<3 {
                _ = try await plumbing.createVeth(VethRequest(name: "vp0", peer: "vp1"), in: ns)
                _ = try await plumbing.createTap(TapRequest(name: tapName, tag: try tag("vm\(round)"), queues: 2,
                                                            offloads: .standard, mtu: 9000), in: ns)
                let queues = try await plumbing.openTapQueues(tapName, count: 2, in: ns)
                let mv = try await plumbing.createMacvtap(MacvtapRequest(name: "mvt0", tag: try tag("vm\(round)"), parent: "vp0",
                                                                         deviceDirectory: dir), in: ns)
                let mvQueues = try await plumbing.openMacvtapQueues(mv, count: 2, in: ns)
                // Four queue fds plus the namespace thread's one netlink socket.
                #expect(count() == 5)
                _ = consume queues
                _ = consume mvQueues
                _ = try? await plumbing.features(of: tapName, in: ns)
                _ = try? await plumbing.createTap(TapRequest(name: tapName, tag: try tag("other")), in: ns)
                _ = try? await plumbing.link("ghost0", in: ns)
                _ = try await plumbing.reap(in: ns, knownVMs: [])
                try await plumbing.delete("vp0", in: ns)
                _ = unlink(mv.devicePath)
                #expect(count() <= 1)
            }
            // Deleting the namespace ends its thread, which closes the socket (it would otherwise
            // keep the namespace alive).
            try NetworkNamespace.delete(named: name)
            deleted = true
            let deadline = ContinuousClock.now + .seconds(10)
            while count() > 0 && ContinuousClock.now < deadline {
                await Task.yield()
            }
            #expect(count() == 0)
        }
    }
}
