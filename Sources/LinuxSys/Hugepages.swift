#if canImport(Glibc)
import Glibc
#endif

/// A huge page size the kernel offers (`/sys/kernel/mm/hugepages/hugepages-<N>kB`).
public struct HugepageSize: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let bytes: Int

    public init(bytes: Int) {
        self.bytes = bytes
    }

    public static let twoMiB = HugepageSize(bytes: 2 << 20)
    public static let oneGiB = HugepageSize(bytes: 1 << 30)

    /// The sysfs directory name, e.g. `hugepages-2048kB`.
    public var sysfsName: String { "hugepages-\(bytes >> 10)kB" }

    /// The form hugetlbfs shows in its `pagesize=` mount option: `2M`, `1G`.
    public var mountOptionValue: String {
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30)G" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20)M" }
        return "\(bytes >> 10)K"
    }

    /// `2 MiB`, `1 GiB`.
    public var description: String {
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        return "\(bytes >> 10) KiB"
    }

    /// Parses a sysfs directory name (`hugepages-2048kB`).
    public init?(sysfsName: String) {
        guard sysfsName.hasPrefix("hugepages-"), sysfsName.hasSuffix("kB"),
              let kib = Int(sysfsName.dropFirst("hugepages-".count).dropLast(2)), kib > 0 else { return nil }
        self.init(bytes: kib << 10)
    }

    /// Parses a `pagesize=` option value: digits with an optional `K`, `M` or `G` (bytes without).
    public init?(mountOptionValue text: String) {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard let value = Int(digits), value > 0 else { return nil }
        let shift: Int
        switch text.dropFirst(digits.count).uppercased() {
        case "": shift = 0
        case "K", "KB": shift = 10
        case "M", "MB": shift = 20
        case "G", "GB": shift = 30
        default: return nil
        }
        self.init(bytes: value << shift)
    }

    public static func < (lhs: HugepageSize, rhs: HugepageSize) -> Bool { lhs.bytes < rhs.bytes }
}

/// The counters of one hugepage pool: one page size, on the whole host or on one NUMA node.
public struct HugepagePool: Hashable, Sendable, CustomStringConvertible {
    /// `nr_hugepages`: persistent pages in the pool.
    public var total: Int
    /// `free_hugepages`: pages no mapping has faulted in.
    public var free: Int
    /// `resv_hugepages`: free pages promised to existing mappings (host-wide only; 0 per node,
    /// where the kernel does not count them).
    public var reserved: Int
    /// `surplus_hugepages`: pages above `nr_hugepages` from overcommit.
    public var surplus: Int

    public init(total: Int, free: Int, reserved: Int, surplus: Int) {
        self.total = total
        self.free = free
        self.reserved = reserved
        self.surplus = surplus
    }

    /// Free pages no mapping has been promised: what a new mapping can count on.
    public var available: Int { max(0, free - reserved) }

    public var description: String { "total \(total), free \(free), reserved \(reserved), surplus \(surplus)" }
}

/// The kernel's hugepage pools through sysfs: `/sys/kernel/mm/hugepages` for the host,
/// `/sys/devices/system/node/node<N>/hugepages` per NUMA node.
public struct HugepageSysfs: Hashable, Sendable {
    /// The sysfs mount point (`/sys`).
    public let root: String

    public init(root: String = "/sys") {
        self.root = root
    }

    /// The directory of a pool; `node` nil for the host-wide one.
    public func directory(_ size: HugepageSize, node: Int?) -> String {
        if let node { return "\(root)/devices/system/node/node\(node)/hugepages/\(size.sysfsName)" }
        return "\(root)/kernel/mm/hugepages/\(size.sysfsName)"
    }

    /// The page sizes the kernel supports, smallest first.
    public func pageSizes() throws(SystemError) -> [HugepageSize] {
        try listDirectory("\(root)/kernel/mm/hugepages").compactMap { HugepageSize(sysfsName: $0) }.sorted()
    }

    /// The NUMA nodes that exist (`node<N>` entries), ascending; empty without NUMA support.
    public func numaNodes() throws(SystemError) -> [Int] {
        let entries: [String]
        do {
            entries = try listDirectory("\(root)/devices/system/node")
        } catch where error.errno == ENOENT {
            return []
        }
        return entries.compactMap { $0.hasPrefix("node") ? Int($0.dropFirst(4)) : nil }.sorted()
    }

    /// The counters of one pool.
    public func pool(_ size: HugepageSize, node: Int? = nil) throws(SystemError) -> HugepagePool {
        let dir = directory(size, node: node)
        return HugepagePool(
            total: try readCount("\(dir)/nr_hugepages"),
            free: try readCount("\(dir)/free_hugepages"),
            reserved: node == nil ? try readCount("\(dir)/resv_hugepages") : 0,
            surplus: try readCount("\(dir)/surplus_hugepages"))
    }

    /// Asks the kernel for `count` persistent pages in a pool and returns how many it has now:
    /// growing may stop short (memory fragmentation), shrinking frees only free pages.
    @discardableResult
    public func setTotal(_ count: Int, size: HugepageSize, node: Int? = nil) throws(SystemError) -> Int {
        let path = "\(directory(size, node: node))/nr_hugepages"
        let fd = try FileDescriptor.open(path, O_WRONLY)
        let text = Array("\(count)\n".utf8)
        let written = try retryingOnInterrupt("write \(count) to \(path)") {
            Int32(text.withUnsafeBytes { write(fd.rawValue, $0.baseAddress, $0.count) })
        }
        guard written == text.count else { throw SystemError("short write to \(path)", errno: EIO) }
        return try readCount(path)
    }

    private func readCount(_ path: String) throws(SystemError) -> Int {
        let text = try readProcFile(path, limit: 64)
        guard let value = Int(text.trimmingSuffixWhitespace()) else {
            throw SystemError("parse \(path): \(text.debugDescription)", errno: EINVAL)
        }
        return value
    }
}

/// One mounted hugetlbfs, from `/proc/self/mountinfo`.
public struct HugetlbfsMount: Hashable, Sendable {
    public var mountPoint: String
    public var pageSize: HugepageSize

    public init(mountPoint: String, pageSize: HugepageSize) {
        self.mountPoint = mountPoint
        self.pageSize = pageSize
    }

    /// The hugetlbfs mounts of the calling process's mount namespace.
    public static func all(mountinfo path: String = "/proc/self/mountinfo") throws(SystemError) -> [HugetlbfsMount] {
        parse(mountinfo: try readProcFile(path, limit: 8 << 20))
    }

    /// Parses mountinfo lines: `id parent maj:min root mountpoint opts [optional…] - fstype source superopts`.
    /// A mount without a `pagesize=` option uses the default size and is left out.
    public static func parse(mountinfo text: String) -> [HugetlbfsMount] {
        var mounts: [HugetlbfsMount] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let dash = fields.firstIndex(of: "-"), dash >= 5, fields.count > dash + 3,
                  fields[dash + 1] == "hugetlbfs" else { continue }
            let options = fields[dash + 3].split(separator: ",")
            guard let option = options.first(where: { $0.hasPrefix("pagesize=") }),
                  let size = HugepageSize(mountOptionValue: String(option.dropFirst("pagesize=".count))) else { continue }
            mounts.append(HugetlbfsMount(mountPoint: unescapeMountinfo(String(fields[4])), pageSize: size))
        }
        return mounts
    }

    /// Mounts a hugetlbfs for `pageSize` at `directory` (which must exist), `nosuid,nodev,noexec`.
    public static func mount(at directory: String, pageSize: HugepageSize, mode: UInt32) throws(SystemError) -> HugetlbfsMount {
        let options = "pagesize=\(pageSize.mountOptionValue),mode=\(String(mode, radix: 8))"
        let flags = UInt(MS_NOSUID) | UInt(MS_NODEV) | UInt(MS_NOEXEC)
        if Glibc.mount("hugetlbfs", directory, "hugetlbfs", flags, options) != 0 {
            throw SystemError("mount hugetlbfs (\(options)) at \(directory)", errno: errno)
        }
        return HugetlbfsMount(mountPoint: directory, pageSize: pageSize)
    }

    /// Unmounts it (lazily, so open files keep working until closed).
    public func unmount() throws(SystemError) {
        if umount2(mountPoint, Int32(MNT_DETACH)) != 0 {
            throw SystemError("umount \(mountPoint)", errno: errno)
        }
    }

    /// mountinfo escapes space, tab, newline and backslash as `\ooo`.
    static func unescapeMountinfo(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var bytes: [UInt8] = []
        var input = Array(text.utf8)[...]
        while let byte = input.popFirst() {
            if byte == UInt8(ascii: "\\"), input.count >= 3,
               let value = UInt8(String(decoding: input.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                input = input.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Names in a directory, without `.` and `..`.
private func listDirectory(_ path: String) throws(SystemError) -> [String] {
    guard let dir = opendir(path) else { throw SystemError("opendir \(path)", errno: errno) }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

extension String {
    fileprivate func trimmingSuffixWhitespace() -> Substring {
        var s = self[...]
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return s
    }
}
