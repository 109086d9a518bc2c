#if canImport(Glibc)
import Glibc
#endif

/// Creates per-VM cgroups under one parent (default `qarax`) in every hierarchy that holds a
/// controller qarax uses, on cgroup v2, v1 or a hybrid of both, as detected at runtime.
///
/// A VM's group joins the hierarchies of `cpu`, `memory` and `pids` wherever they are mounted
/// (so usage is accounted and OOM kills are seen even without limits) and of `cpuset` when the
/// limits ask for it. Where cgroup2 is mounted the group also gets a cgroup2 directory, which gives
/// `CLONE_INTO_CGROUP` placement and `cgroup.kill` even on a hybrid host. Only directories under
/// the parent are ever created, written or removed; the host's other groups are left alone.
public struct CgroupManager: Hashable, Sendable {
    public let topology: CgroupTopology
    /// The parent's path below each hierarchy's mount point, e.g. `qarax` or `qarax/vms`.
    public let parent: String

    /// Controllers a VM's group joins whenever the host has them.
    public static let baseControllers = ["cpu", "memory", "pids"]

    public init(topology: CgroupTopology, parent: String = "qarax") throws(CgroupError) {
        let components = parent.split(separator: "/", omittingEmptySubsequences: false)
        guard !components.isEmpty else { throw .invalidName(field: "cgroup_parent", value: parent, reason: "is empty") }
        for component in components {
            try Self.validateComponent(String(component), field: "cgroup_parent", whole: parent)
        }
        guard topology.v2 != nil || !topology.v1.isEmpty else { throw .noCgroupFilesystem }
        self.topology = topology
        self.parent = parent
    }

    /// Detects this host's hierarchies from `/proc/self/mountinfo`.
    public static func detect(parent: String = "qarax") throws(CgroupError) -> CgroupManager {
        let topology: CgroupTopology
        do { topology = try CgroupTopology.detect() } catch { throw .system(error) }
        return try CgroupManager(topology: topology, parent: parent)
    }

    /// Checks a VM group name: a single directory name of 1…255 characters from `A-Z a-z 0-9 . _ -`,
    /// not `.`/`..` and not starting with `cgroup.` (reserved for the kernel's interface files).
    public static func validateName(_ name: String) throws(CgroupError) {
        try validateComponent(name, field: "cgroup_name", whole: name)
    }

    static func validateComponent(_ component: String, field: String, whole: String) throws(CgroupError) {
        if component.isEmpty { throw .invalidName(field: field, value: whole, reason: "has an empty path component") }
        if component.utf8.count > 255 { throw .invalidName(field: field, value: whole, reason: "has a component longer than 255 bytes") }
        if component == "." || component == ".." { throw .invalidName(field: field, value: whole, reason: "must not contain '.' or '..'") }
        if component.hasPrefix("cgroup.") { throw .invalidName(field: field, value: whole, reason: "must not start with 'cgroup.' (reserved by the kernel)") }
        let allowed = component.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "-" || $0 == "_" || $0 == "."
        }
        if !allowed { throw .invalidName(field: field, value: whole, reason: "may only contain letters, digits, '.', '_' and '-'") }
    }

    /// Where the group `name` lives, without touching the filesystem: the cgroup2 directory (if
    /// cgroup2 is mounted) and one directory per v1 hierarchy holding a controller the group joins.
    /// Throws when a controller `limits` need is absent from the host.
    public func plan(name: String, limits: CgroupLimits = .none) throws(CgroupError) -> VMCgroup {
        try Self.validateName(name)
        var wanted = Self.baseControllers
        if limits.cpusetCpus != nil || limits.cpusetMems != nil { wanted.append("cpuset") }
        for controller in limits.requiredControllers where topology.location(of: controller) == nil {
            throw .controllerUnavailable(controller: controller, field: limits.firstField(needing: controller),
                                         layout: topology.layout)
        }
        var v1Dirs: [VMCgroup.V1Directory] = []
        var v2Controllers: [String] = []
        for controller in wanted {
            switch topology.location(of: controller) {
            case let .v1(mountPoint, coMounted)?:
                let path = "\(mountPoint)/\(parent)/\(name)"
                if let i = v1Dirs.firstIndex(where: { $0.path == path }) {
                    v1Dirs[i].controllers.append(controller)
                } else {
                    v1Dirs.append(.init(path: path, mountPoint: mountPoint, controllers: [controller],
                                        coMounted: coMounted))
                }
            case .v2?:
                v2Controllers.append(controller)
            case nil:
                continue
            }
        }
        let v2Dir = topology.v2.map { "\($0.mountPoint)/\(parent)/\(name)" }
        return VMCgroup(name: name, v2Directory: v2Dir, v2MountPoint: topology.v2?.mountPoint,
                        v2Controllers: v2Controllers, v1Directories: v1Dirs)
    }

    /// The group `name` created earlier (e.g. by a previous node daemon), for re-adoption and
    /// teardown. Includes its cpuset directory when one exists. Nothing is created.
    public func open(name: String) throws(CgroupError) -> VMCgroup {
        let plain = try plan(name: name)
        guard case let .v1(mountPoint, _)? = topology.location(of: "cpuset"),
              CgroupFS.exists("\(mountPoint)/\(parent)/\(name)") else {
            if let v2 = plain.v2Directory, topology.v2Controllers.contains("cpuset"),
               (try? CgroupFS.read(v2 + "/cpuset.cpus"))?.isEmpty == false {
                return try plan(name: name, limits: CgroupLimits(cpusetMems: ""))
            }
            return plain
        }
        return try plan(name: name, limits: CgroupLimits(cpusetMems: ""))
    }

    /// Creates the VM group `name` (and the parent where missing), applies `limits`, and returns it.
    ///
    /// Call before spawning; hand `group.placement` to the launcher. A leftover group of the same
    /// name without processes is removed and made afresh; one with processes is `.inUse`. On failure,
    /// the directories this call created for the VM are removed again (the shared parent stays).
    public func create(name: String, limits: CgroupLimits) throws(CgroupError) -> VMCgroup {
        try limits.validate()
        let group = try plan(name: name, limits: limits)
        let existingPids = try group.memberPIDs()
        if !existingPids.isEmpty {
            throw .inUse(path: group.allDirectories.first ?? name, pids: existingPids)
        }
        // A leftover empty group is removed so no limit of its earlier life survives.
        let leftover = try open(name: name)
        if leftover.allDirectories.contains(where: CgroupFS.exists) { try leftover.remove() }
        try checkCpusetWithinHost(limits, group: group)
        var created: [String] = []
        do {
            try prepareV2(group, limits: limits, created: &created)
            for dir in group.v1Directories {
                try prepareV1(dir, limits: limits, created: &created)
            }
            try group.apply(limits, topology: topology)
        } catch {
            for path in created.reversed() { try? CgroupFS.removeDirectory(path) }
            throw error
        }
        return group
    }

    /// Creates every missing directory of `parent` below `mountPoint`, calling `initialize` on new ones.
    private func makeParents(under mountPoint: String, initialize: (String, String) throws(SystemError) -> Void)
        throws(SystemError) {
        var path = mountPoint
        for component in parent.split(separator: "/") {
            let upper = path
            path += "/\(component)"
            try CgroupFS.makeDirectory(path)
            try initialize(upper, path)
        }
    }

    private func prepareV2(_ group: VMCgroup, limits: CgroupLimits, created: inout [String]) throws(CgroupError) {
        guard let dir = group.v2Directory, let mount = group.v2MountPoint else { return }
        let required = Set(limits.requiredControllers)
        do {
            var enable = group.v2Controllers
            // Each level must delegate the controllers to the next one, down to the VM's group.
            var levels = [mount]
            var path = mount
            for component in parent.split(separator: "/") {
                path += "/\(component)"
                levels.append(path)
                try CgroupFS.makeDirectory(path)
            }
            for level in levels {
                var kept: [String] = []
                for controller in enable {
                    do {
                        try CgroupFS.write("+\(controller)", to: level + "/cgroup.subtree_control")
                        kept.append(controller)
                    } catch where !required.contains(controller) {
                        continue
                    }
                }
                enable = kept
            }
            if try CgroupFS.makeDirectory(dir) { created.append(dir) }
            if group.v2Controllers.contains("cpuset") {
                try initializeCpuset(parent: levels.last ?? mount, child: dir, cpusFile: "cpuset.cpus.effective",
                                     memsFile: "cpuset.mems.effective", limits: limits, inheritWhenUnset: false)
            }
        } catch {
            throw .system(error)
        }
    }

    private func prepareV1(_ dir: VMCgroup.V1Directory, limits: CgroupLimits, created: inout [String])
        throws(CgroupError) {
        let isCpuset = dir.controllers.contains("cpuset") || dir.coMounted.contains("cpuset")
        do {
            // v1 cpuset: a group with an empty cpuset.cpus/mems refuses tasks, so every new level
            // copies its parent's sets before anything can join it.
            try makeParents(under: dir.mountPoint) { (upper, path) throws(SystemError) in
                if isCpuset {
                    try copyCpusetIfEmpty(from: upper, to: path)
                }
            }
            if try CgroupFS.makeDirectory(dir.path) { created.append(dir.path) }
            if isCpuset {
                let upper = String(dir.path[..<(dir.path.lastIndex(of: "/") ?? dir.path.endIndex)])
                try initializeCpuset(parent: upper, child: dir.path, cpusFile: "cpuset.cpus", memsFile: "cpuset.mems",
                                     limits: limits, inheritWhenUnset: true)
            }
        } catch {
            throw .system(error)
        }
    }

    /// Requested cpus/mems must exist on the host (the root's effective sets).
    private func checkCpusetWithinHost(_ limits: CgroupLimits, group: VMCgroup) throws(CgroupError) {
        let root: String
        let suffix: String
        switch topology.location(of: "cpuset") {
        case let .v1(mountPoint, _)?: (root, suffix) = (mountPoint, "")
        case let .v2(mountPoint)?: (root, suffix) = (mountPoint, ".effective")
        case nil: return
        }
        for (field, value, file) in [("cpuset_cpus", limits.cpusetCpus, "cpuset.cpus"),
                                     ("cpuset_mems", limits.cpusetMems, "cpuset.mems")] {
            guard let value, let wanted = CpuList.parse(value) else { continue }
            let hostText: String
            do { hostText = try CgroupFS.read("\(root)/\(file)\(suffix)") } catch { throw .system(error) }
            guard let host = CpuList.parse(hostText) else { throw .unparsable(path: "\(root)/\(file)\(suffix)", content: hostText) }
            if !wanted.isSubset(of: host) {
                throw .invalidLimit(field: field, value: "'\(value)'", reason: "is not within the host's set '\(hostText)'")
            }
        }
    }

    private func copyCpusetIfEmpty(from upper: String, to path: String) throws(SystemError) {
        for file in ["cpuset.cpus", "cpuset.mems"] where try CgroupFS.read(path + "/" + file).isEmpty {
            try CgroupFS.write(try CgroupFS.read(upper + "/" + file), to: path + "/" + file)
        }
    }

    /// Writes the requested cpus/mems (or the parent's, for v1, when unset) into the new group.
    /// Order matters on v1: `cpuset.cpus` and `cpuset.mems` must both be set before a task joins.
    private func initializeCpuset(parent upper: String, child: String, cpusFile: String, memsFile: String,
                                  limits: CgroupLimits, inheritWhenUnset: Bool) throws(SystemError) {
        var cpus = limits.cpusetCpus
        var mems = limits.cpusetMems
        if inheritWhenUnset {
            if cpus == nil { cpus = try CgroupFS.read(upper + "/" + cpusFile) }
            if mems == nil { mems = try CgroupFS.read(upper + "/" + memsFile) }
        }
        if let cpus { try CgroupFS.write(cpus, to: child + "/cpuset.cpus") }
        if let mems { try CgroupFS.write(mems, to: child + "/cpuset.mems") }
    }
}
