import Testing
@testable import LinuxSys

@Suite struct CgroupLimitsTests {
    @Test(arguments: [
        (CgroupLimits(memoryMax: 1000), "memory_max: 1000 is below the minimum 1048576 (1 MiB)"),
        (CgroupLimits(memoryHigh: 10), "memory_high: 10 is below the minimum 1048576 (1 MiB)"),
        (CgroupLimits(memoryMax: 1 << 21, memoryHigh: 1 << 22), "memory_high: 4194304 is above memory_max 2097152"),
        (CgroupLimits(cpuQuota: 10), "cpu_quota: 10 is below the minimum 1000 microseconds"),
        (CgroupLimits(cpuQuota: 50_000, cpuPeriod: 10), "cpu_period: 10 is outside 1000…1000000 microseconds"),
        (CgroupLimits(cpuPeriod: 100_000), "cpu_period: 100000 is set without cpu_quota"),
        (CgroupLimits(cpuWeight: 0), "cpu_weight: 0 is outside 1…10000"),
        (CgroupLimits(cpuWeight: 10_001), "cpu_weight: 10001 is outside 1…10000"),
        (CgroupLimits(pidsMax: 0), "pids_max: 0 is outside 1…4194304"),
        (CgroupLimits(cpusetCpus: "0-"), "cpuset_cpus: '0-' is not a CPU list such as 0-3,6"),
        (CgroupLimits(cpusetMems: "x"), "cpuset_mems: 'x' is not a node list such as 0 or 0-1"),
    ])
    func badLimitsNameFieldValueAndReason(limits: CgroupLimits, message: String) {
        do {
            try limits.validate()
            Issue.record("\(limits) validated")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func goodLimitsValidate() throws {
        try CgroupLimits(cpuQuota: 50_000, cpuPeriod: 100_000, cpuWeight: 100, memoryMax: 1 << 30,
                         memoryHigh: 1 << 29, pidsMax: 100, cpusetCpus: "0-1,3", cpusetMems: "0").validate()
        try CgroupLimits.none.validate()
        #expect(CgroupLimits(memoryHigh: 1 << 20, pidsMax: 1).requiredControllers == ["memory", "pids"])
        #expect(CgroupLimits(cpuWeight: 5, cpusetCpus: "0").requiredControllers == ["cpu", "cpuset"])
    }

    @Test(arguments: [(UInt64(1), UInt64(10)), (100, 1024), (50, 512), (10_000, 102_400)])
    func weightMapsToShares(weight: UInt64, shares: UInt64) {
        #expect(CgroupLimits.shares(fromWeight: weight) == shares)
        #expect(CgroupLimits.weight(fromShares: shares) == weight)
    }

    @Test func weightSurvivesTheRoundTripThroughShares() {
        for weight in CgroupLimits.cpuWeightRange {
            #expect(CgroupLimits.weight(fromShares: CgroupLimits.shares(fromWeight: weight)) == weight)
        }
        #expect(CgroupLimits.shares(fromWeight: 0) == 2)
        #expect(CgroupLimits.weight(fromShares: 262_144) == 10_000)
    }

    @Test func cpuListsParse() {
        #expect(CpuList.parse("0-3,6") == [0, 1, 2, 3, 6])
        #expect(CpuList.parse(" 1\n") == [1])
        #expect(CpuList.parse("") == [])
        #expect(CpuList.parse("3-1") == nil)
        #expect(CpuList.parse("1,,2") == nil)
        #expect(CpuList.parse("-1") == nil)
    }
}
