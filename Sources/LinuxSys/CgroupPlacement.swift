/// Where a new process must be placed in the cgroup hierarchy before it runs anything.
///
/// Produced by the cgroup code (one per VM), consumed by the launcher's child:
/// - `v2Directory`: a cgroup2 directory; the launcher opens it and uses `CLONE_INTO_CGROUP`.
/// - `v1ProcsFiles`: `cgroup.procs` files of cgroup-v1 hierarchies (cpu, memory, pids…); the
///   child joins each group before anything else (through the `tasks` file next to it).
/// On a hybrid host (v1 controllers plus a cgroup2 mount) both may be set.
public struct CgroupPlacement: Hashable, Sendable {
    public var v2Directory: String?
    public var v1ProcsFiles: [String]

    public init(v2Directory: String? = nil, v1ProcsFiles: [String] = []) {
        self.v2Directory = v2Directory
        self.v1ProcsFiles = v1ProcsFiles
    }

    /// No placement: the child stays in the parent's cgroups.
    public static let inherit = CgroupPlacement()
}
