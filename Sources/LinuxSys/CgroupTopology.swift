#if canImport(Glibc)
import Glibc
#endif

/// How a host arranges its cgroup hierarchies.
public enum CgroupLayout: String, Hashable, Sendable, Codable {
    /// Only cgroup2, normally at `/sys/fs/cgroup`.
    case unified
    /// cgroup-v1 hierarchies holding controllers, plus a cgroup2 mount (e.g. `/sys/fs/cgroup/unified`).
    case hybrid
    /// Only cgroup-v1 hierarchies.
    case legacy
    /// No cgroup filesystem mounted.
    case none
}

/// One mounted cgroup hierarchy, as read from `/proc/self/mountinfo`.
public struct CgroupHierarchy: Hashable, Sendable, Codable {
    public enum Version: String, Hashable, Sendable, Codable { case v1, v2 }

    public var version: Version
    /// Where the hierarchy is mounted, e.g. `/sys/fs/cgroup/memory` or `/sys/fs/cgroup`.
    public var mountPoint: String
    /// The hierarchy's directory that is mounted there (`/` unless in a cgroup namespace or bind mount).
    public var root: String
    /// v1: the controllers bound to this hierarchy, co-mounted ones together (`["cpu", "cpuacct"]`).
    /// v2: the controllers in the root's `cgroup.controllers` (filled by `CgroupTopology.detect`).
    public var controllers: [String]
    /// v1 only: the `name=` of a named hierarchy without controllers (e.g. `systemd`).
    public var name: String?

    public init(version: Version, mountPoint: String, root: String = "/", controllers: [String], name: String? = nil) {
        self.version = version
        self.mountPoint = mountPoint
        self.root = root
        self.controllers = controllers
        self.name = name
    }
}

/// Where a controller lives on this host.
public enum CgroupControllerLocation: Hashable, Sendable {
    /// In a cgroup-v1 hierarchy mounted at `mountPoint`, together with `coMounted` controllers.
    case v1(mountPoint: String, coMounted: [String])
    /// In the cgroup2 hierarchy mounted at `mountPoint`.
    case v2(mountPoint: String)
}

/// The cgroup hierarchies of this host: which are mounted and which controllers each holds.
public struct CgroupTopology: Hashable, Sendable {
    /// v1 hierarchies that hold at least one controller or a name, in mountinfo order.
    public var v1: [CgroupHierarchy]
    /// The cgroup2 hierarchy, if mounted.
    public var v2: CgroupHierarchy?

    public init(v1: [CgroupHierarchy], v2: CgroupHierarchy?) {
        self.v1 = v1
        self.v2 = v2
    }

    public var layout: CgroupLayout {
        let v1WithControllers = v1.contains { !$0.controllers.isEmpty }
        switch (v1WithControllers, v2 != nil) {
        case (false, true): return .unified
        case (true, true): return .hybrid
        case (true, false): return .legacy
        case (false, false): return v1.isEmpty ? .none : .legacy
        }
    }

    /// Where `controller` is available; v1 wins where a controller is bound to a v1 hierarchy,
    /// because the kernel then hides it from cgroup2.
    public func location(of controller: String) -> CgroupControllerLocation? {
        if let h = v1.first(where: { $0.controllers.contains(controller) }) {
            return .v1(mountPoint: h.mountPoint, coMounted: h.controllers.filter { $0 != controller })
        }
        if let v2, v2.controllers.contains(controller) {
            return .v2(mountPoint: v2.mountPoint)
        }
        return nil
    }

    /// Every controller available on this host, sorted.
    public var availableControllers: [String] {
        var all = Set(v1.flatMap(\.controllers))
        if let v2 { all.formUnion(v2.controllers) }
        return all.sorted()
    }

    /// Controllers available in v1 hierarchies, sorted.
    public var v1Controllers: [String] { Set(v1.flatMap(\.controllers)).sorted() }

    /// Controllers available in the cgroup2 hierarchy, sorted.
    public var v2Controllers: [String] { (v2?.controllers ?? []).sorted() }

    /// Reads `/proc/self/mountinfo` and the cgroup2 root's `cgroup.controllers`.
    public static func detect(mountinfoPath: String = "/proc/self/mountinfo") throws(SystemError) -> CgroupTopology {
        var topology = parse(mountinfo: try readProcFile(mountinfoPath))
        if var v2 = topology.v2 {
            let text = try readProcFile(v2.mountPoint + "/cgroup.controllers")
            v2.controllers = text.split(whereSeparator: \.isWhitespace).map(String.init)
            topology.v2 = v2
        }
        return topology
    }

    /// Mount options of a v1 cgroup mount that are not controllers.
    static let v1NonControllerOptions: Set<String> = [
        "rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods", "none",
        "nosuid", "nodev", "noexec", "relatime", "noatime",
    ]

    /// Parses mountinfo text (pure): every `cgroup` and `cgroup2` mount, first mount of each
    /// hierarchy wins (later ones are bind mounts of the same superblock).
    public static func parse(mountinfo: String) -> CgroupTopology {
        var v1: [CgroupHierarchy] = []
        var v2: CgroupHierarchy?
        var seenDevices = Set<String>()
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 3 else { continue }
            let fsType = fields[dash + 1]
            guard fsType == "cgroup" || fsType == "cgroup2" else { continue }
            let device = String(fields[2])
            guard !seenDevices.contains(device) else { continue }
            seenDevices.insert(device)
            let root = unescape(fields[3])
            let mountPoint = unescape(fields[4])
            if fsType == "cgroup2" {
                if v2 == nil { v2 = CgroupHierarchy(version: .v2, mountPoint: mountPoint, root: root, controllers: []) }
                continue
            }
            var controllers: [String] = []
            var name: String?
            for option in fields[dash + 3].split(separator: ",") {
                if option.hasPrefix("name=") {
                    name = String(option.dropFirst(5))
                } else if !option.contains("=") && !v1NonControllerOptions.contains(String(option)) {
                    controllers.append(String(option))
                }
            }
            v1.append(CgroupHierarchy(version: .v1, mountPoint: mountPoint, root: root,
                                      controllers: controllers, name: name))
        }
        return CgroupTopology(v1: v1, v2: v2)
    }

    /// Decodes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
    static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
               let value = UInt8(String(decoding: utf8[(i + 1)..<(i + 4)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
