import Foundation
import Glibc
import Testing

/// Snapshots what a VM's life may leave behind on the host and reports what is new since an
/// earlier snapshot:
/// - processes whose parent is the test process,
/// - links whose alias starts with `qarax:` (in a named network namespace, or the test's own),
/// - cgroup directories under `/sys/fs/cgroup/*/qarax*` (and a cgroup2 root's `qarax*`),
/// - files, sockets and directories under a runtime root,
/// - the test process's open descriptors.
///
/// Tests run in parallel: descriptors and children of other tests can show up between two
/// snapshots, and so can their cgroups and links. ``expectNoLeaks(sourceLocation:_:)`` therefore
/// waits (with a deadline) for what is new to go away before reporting it;
/// `ignoringDescriptors`/`ignoringProcesses` drop known ones.
struct LeakCheck: Sendable {
    /// `ip netns` name of the namespace whose links are checked; nil for the test's namespace.
    var netns: String?
    /// The runtime root whose contents are checked; nil to skip.
    var runtimeRoot: String?
    /// Where cgroup hierarchies are mounted.
    var cgroupRoot = "/sys/fs/cgroup"
    /// Descriptors (by their `/proc/self/fd` link target) that are not counted.
    var ignoringDescriptors: @Sendable (String) -> Bool = { _ in false }
    /// Child processes (by command name) that are not counted.
    var ignoringProcesses: @Sendable (String) -> Bool = { _ in false }

    init(netns: String? = nil, runtimeRoot: String? = nil) {
        self.netns = netns
        self.runtimeRoot = runtimeRoot
    }

    struct Snapshot: Equatable, Sendable {
        /// `pid (comm)` of children.
        var children: Set<String> = []
        /// `name (alias)` of qarax links.
        var links: Set<String> = []
        var cgroups: Set<String> = []
        /// Paths with their type, e.g. `socket /run/qarax/vms/web1/api.sock`.
        var runtimeFiles: Set<String> = []
        /// `fd N -> target`.
        var descriptors: Set<String> = []
    }

    func snapshot() -> Snapshot {
        Snapshot(children: children(), links: links(), cgroups: cgroups(), runtimeFiles: runtimeFiles(),
                 descriptors: descriptors())
    }

    /// What `now` has that `before` had not, one line per thing.
    static func difference(from before: Snapshot, to now: Snapshot) -> [String] {
        func new(_ kind: String, _ a: Set<String>, _ b: Set<String>) -> [String] {
            b.subtracting(a).sorted().map { "\(kind): \($0)" }
        }
        return new("child process", before.children, now.children)
            + new("link", before.links, now.links)
            + new("cgroup", before.cgroups, now.cgroups)
            + new("runtime file", before.runtimeFiles, now.runtimeFiles)
            + new("descriptor", before.descriptors, now.descriptors)
    }

    /// What is new since `before`.
    func leaks(since before: Snapshot) -> [String] {
        Self.difference(from: before, to: snapshot())
    }

    /// What is still new since `before` once `deadline` has passed, or nothing as soon as a
    /// snapshot shows nothing new. What tests running concurrently hold (descriptors, children,
    /// their own cgroups and links) goes away when they end; a leak stays.
    func awaitNoLeaks(since before: Snapshot, deadline: Duration = .seconds(3)) -> [String] {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: deadline)
        while true {
            let leaked = leaks(since: before)
            if leaked.isEmpty || clock.now >= end { return leaked }
            var pause = timespec(tv_sec: 0, tv_nsec: 5_000_000)
            nanosleep(&pause, nil)
        }
    }

    /// Runs `body` and records an issue for everything it left behind.
    func expectNoLeaks<T>(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) rethrows -> T {
        let before = snapshot()
        let result = try body()
        let leaked = awaitNoLeaks(since: before)
        #expect(leaked.isEmpty, "left behind:\n\(leaked.joined(separator: "\n"))", sourceLocation: sourceLocation)
        return result
    }

    /// Async variant of ``expectNoLeaks(sourceLocation:_:)``.
    func expectNoLeaks<T>(sourceLocation: SourceLocation = #_sourceLocation,
                          _ body: () async throws -> T) async rethrows -> T {
        let before = snapshot()
        let result = try await body()
        let leaked = awaitNoLeaks(since: before)
        #expect(leaked.isEmpty, "left behind:\n\(leaked.joined(separator: "\n"))", sourceLocation: sourceLocation)
        return result
    }

    // MARK: - Sources

    private func children() -> Set<String> {
        let me = getpid()
        var found: Set<String> = []
        for entry in Self.list("/proc") {
            guard let pid = Int32(entry), pid != me,
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
            let comm = String(stat[stat.index(after: open)..<close])
            let rest = stat[stat.index(after: close)...].split(separator: " ")
            // rest[0] is the state (field 3), rest[1] the parent pid (field 4).
            guard rest.count > 1, Int32(rest[1]) == me, !ignoringProcesses(comm) else { continue }
            found.insert("\(pid) (\(comm))")
        }
        return found
    }

    private func links() -> Set<String> {
        if let netns {
            return Self.linksViaIP(netns: netns)
        }
        var found: Set<String> = []
        for name in Self.list("/sys/class/net") {
            let alias = (try? String(contentsOfFile: "/sys/class/net/\(name)/ifalias", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if alias.hasPrefix("qarax:") { found.insert("\(name) (\(alias))") }
        }
        return found
    }

    /// Another namespace's links, from the kernel through `ip -json` (sysfs shows only the
    /// namespace it was mounted in).
    private static func linksViaIP(netns: String) -> Set<String> {
        guard let output = run(["/usr/sbin/ip", "-json", "-netns", netns, "link", "show"]),
              let array = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]] else {
            return ["cannot list links of netns \(netns)"]
        }
        var found: Set<String> = []
        for link in array {
            guard let alias = link["ifalias"] as? String, alias.hasPrefix("qarax:"),
                  let name = link["ifname"] as? String else { continue }
            found.insert("\(name) (\(alias))")
        }
        return found
    }

    private func cgroups() -> Set<String> {
        var found: Set<String> = []
        var tops: [String] = Self.list(cgroupRoot).filter { $0.hasPrefix("qarax") }.map { "\(cgroupRoot)/\($0)" }
        for hierarchy in Self.list(cgroupRoot) {
            tops += Self.list("\(cgroupRoot)/\(hierarchy)").filter { $0.hasPrefix("qarax") }
                .map { "\(cgroupRoot)/\(hierarchy)/\($0)" }
        }
        for top in tops where Self.isDirectory(top) {
            found.insert(top)
            Self.walk(top) { path, type in if type == "directory" { found.insert(path) } }
        }
        return found
    }

    private func runtimeFiles() -> Set<String> {
        guard let runtimeRoot else { return [] }
        var found: Set<String> = []
        Self.walk(runtimeRoot) { path, type in found.insert("\(type) \(path)") }
        return found
    }

    private func descriptors() -> Set<String> {
        var found: Set<String> = []
        for entry in Self.list("/proc/self/fd") {
            guard let fd = Int32(entry) else { continue }
            // A descriptor closed since the directory was read has no link any more.
            guard let target = Self.readLink("/proc/self/fd/\(fd)") else { continue }
            // The directory stream listing /proc/self/fd is itself a descriptor.
            if target.hasPrefix("/proc/") && target.hasSuffix("/fd") { continue }
            if ignoringDescriptors(target) { continue }
            found.insert("fd \(fd) -> \(target)")
        }
        return found
    }

    // MARK: - Helpers

    static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Visits everything below `root` (not `root` itself), without following symlinks.
    static func walk(_ root: String, _ visit: (String, String) -> Void) {
        for name in list(root) {
            let path = "\(root)/\(name)"
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let type: String
            switch info.st_mode & S_IFMT {
            case S_IFDIR: type = "directory"
            case S_IFSOCK: type = "socket"
            case S_IFLNK: type = "symlink"
            case S_IFIFO: type = "fifo"
            case S_IFREG: type = "file"
            default: type = "node"
            }
            visit(path, type)
            if type == "directory" { walk(path, visit) }
        }
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs a program and returns its standard output, or nil when it fails.
    static func run(_ argv: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try? pipe.fileHandleForReading.close()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
