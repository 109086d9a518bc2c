import Foundation
import Glibc
import Testing

/// What a VM's life may leave behind on the host, checked only within one test's own scope so
/// tests running in parallel never see each other's resources and nothing needs waiting for:
/// - links with a `qarax:` alias in the test's own network namespace (`netns`), or, in the
///   test's namespace, those whose VM id starts with `vmPrefix`;
/// - cgroup directories whose name starts with `cgroupPrefix` (one level below each hierarchy's
///   top-level groups, e.g. `/sys/fs/cgroup/memory/qarax/<prefix>…`, and the top level itself);
/// - files, FIFOs, sockets and directories under the test's runtime root;
/// - the VMM processes the test launched (`processes`), alive or unreaped;
/// - the test process's descriptors that point into the runtime root.
///
/// ``snapshot()`` and ``leaks(since:)`` also compare whole-process views (children, descriptors)
/// for tests that control everything in between.
struct LeakCheck: Sendable {
    /// `ip netns` name of the namespace whose links are checked; nil for the test's namespace.
    var netns: String?
    /// The runtime root whose contents are checked; nil to skip.
    var runtimeRoot: String?
    /// Where cgroup hierarchies are mounted.
    var cgroupRoot = "/sys/fs/cgroup"
    /// The unique prefix of the test's cgroup (and VM) names; nil to skip cgroups.
    var cgroupPrefix: String?
    /// In the test's own namespace, only links of VMs whose id starts with this are counted.
    var vmPrefix: String?
    /// The pids of the processes the test launched (read after the body ran).
    var processes: @Sendable () -> [Int32] = { [] }
    /// Descriptors (by their `/proc/self/fd` link target) that are not counted.
    var ignoringDescriptors: @Sendable (String) -> Bool = { _ in false }
    /// Child processes (by command name) that are not counted.
    var ignoringProcesses: @Sendable (String) -> Bool = { _ in false }

    init(netns: String? = nil, runtimeRoot: String? = nil, cgroupPrefix: String? = nil, vmPrefix: String? = nil,
         processes: @escaping @Sendable () -> [Int32] = { [] }) {
        self.netns = netns
        self.runtimeRoot = runtimeRoot
        self.cgroupPrefix = cgroupPrefix
        self.vmPrefix = vmPrefix
        self.processes = processes
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

    /// What is in the test's scope now, one line per thing (see the type's documentation).
    func scopedLeftovers() -> [String] {
        var found: [String] = []
        found += scopedLinks().sorted().map { "link: \($0)" }
        found += scopedCgroups().sorted().map { "cgroup: \($0)" }
        found += runtimeFiles().sorted().map { "runtime file: \($0)" }
        for pid in processes() where Self.exists(pid) {
            found.append("process: \(pid) (\(Self.command(of: pid) ?? "?"))")
        }
        if let runtimeRoot {
            found += descriptors().filter { $0.contains("-> \(runtimeRoot)") }.sorted().map { "descriptor: \($0)" }
        }
        return found
    }

    /// Runs `body` and records an issue for everything in the test's scope that it left behind.
    func expectNoLeaks<T>(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) rethrows -> T {
        let before = Set(scopedLeftovers())
        defer { report(before: before, sourceLocation: sourceLocation) }
        return try body()
    }

    /// Async variant of ``expectNoLeaks(sourceLocation:_:)``.
    func expectNoLeaks<T>(sourceLocation: SourceLocation = #_sourceLocation,
                          _ body: () async throws -> T) async rethrows -> T {
        let before = Set(scopedLeftovers())
        defer { report(before: before, sourceLocation: sourceLocation) }
        return try await body()
    }

    private func report(before: Set<String>, sourceLocation: SourceLocation) {
        let leaked = scopedLeftovers().filter { !before.contains($0) }
        #expect(leaked.isEmpty, "left behind:\n\(leaked.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    private func scopedLinks() -> Set<String> {
        if netns != nil { return links() }
        guard let vmPrefix else { return [] }
        return links().filter { $0.contains("(qarax:vm=\(vmPrefix)") }
    }

    private func scopedCgroups() -> Set<String> {
        guard let cgroupPrefix else { return [] }
        var found: Set<String> = []
        var parents = [cgroupRoot]
        for hierarchy in Self.list(cgroupRoot) where Self.isDirectory("\(cgroupRoot)/\(hierarchy)") {
            let top = "\(cgroupRoot)/\(hierarchy)"
            parents.append(top)
            for group in Self.list(top) where Self.isDirectory("\(top)/\(group)") { parents.append("\(top)/\(group)") }
        }
        for parent in parents {
            for name in Self.list(parent) where name.hasPrefix(cgroupPrefix) && Self.isDirectory("\(parent)/\(name)") {
                found.insert("\(parent)/\(name)")
            }
        }
        return found
    }

    /// Whether `pid` exists (running or a zombie nobody reaped).
    static func exists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    static func command(of pid: Int32) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
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
