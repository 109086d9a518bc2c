import Testing
@testable import LinuxSys

@Suite struct SpawnCgroupFileTests {
    @Test(arguments: [
        ("/sys/fs/cgroup/cpu/qarax/vm-1/cgroup.procs", "/sys/fs/cgroup/cpu/qarax/vm-1/tasks"),
        ("/sys/fs/cgroup/cpu,cpuacct/qarax/vm-1/cgroup.procs", "/sys/fs/cgroup/cpu,cpuacct/qarax/vm-1/tasks"),
        ("/sys/fs/cgroup/pids/tasks", "/sys/fs/cgroup/pids/tasks"),
    ])
    func childJoinsV1GroupsThroughTheirTasksFile(procs: String, expected: String) {
        #expect(Launcher.v1TasksFile(procs) == expected)
    }
}
