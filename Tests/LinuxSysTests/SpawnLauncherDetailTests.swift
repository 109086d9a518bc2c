import Glibc
import Testing
@testable import LinuxSys

/// What the launcher hands its child besides the plan itself.
@Suite struct SpawnLauncherDetailTests {
    @Test(arguments: [
        ("/sys/fs/cgroup/cpu/qarax/vm-1/cgroup.procs", "/sys/fs/cgroup/cpu/qarax/vm-1/tasks"),
        ("/sys/fs/cgroup/cpu,cpuacct/qarax/vm-1/cgroup.procs", "/sys/fs/cgroup/cpu,cpuacct/qarax/vm-1/tasks"),
        ("/sys/fs/cgroup/pids/tasks", "/sys/fs/cgroup/pids/tasks"),
    ])
    func childJoinsV1GroupsThroughTheirTasksFile(procs: String, expected: String) {
        #expect(Launcher.v1TasksFile(procs) == expected)
    }

    @Test func jailMountPointsAreDirectoriesParentsFirstAndFilesForFiles() {
        let jail = JailPlan(root: "/j/", mounts: [
            BindMount("/usr/lib"), BindMount(source: "/etc/hostname", target: "/etc/./name"),
            BindMount("/nonexistent/qx-kernel"), BindMount(source: "/usr/share", target: "/usr/share"),
        ], devices: ["/dev/null"], mountProc: true)
        let points = Launcher.mountPoints(jail)
        #expect(points.directories == ["/j/proc", "/j/usr", "/j/usr/lib", "/j/etc", "/j/usr/share", "/j/dev"])
        #expect(points.files == ["/j/etc/name", "/j/dev/null"])
    }
}
