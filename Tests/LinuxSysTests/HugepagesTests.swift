import Glibc
import LinuxSys
import Testing

@Suite("Hugepages: sysfs names, mount options, mountinfo")
struct HugepagesParsingTests {
    @Test("sysfs directory names", arguments: [
        ("hugepages-2048kB", 2 << 20), ("hugepages-1048576kB", 1 << 30), ("hugepages-64kB", 64 << 10),
    ])
    func sysfsNames(name: String, bytes: Int) {
        let size = HugepageSize(sysfsName: name)
        #expect(size?.bytes == bytes)
        #expect(size?.sysfsName == name)
    }

    @Test("names that are not pools", arguments: ["hugepages-", "hugepages-2048", "hugepages-0kB", "huge-2048kB", "hugepages-xkB"])
    func notPools(name: String) {
        #expect(HugepageSize(sysfsName: name) == nil)
    }

    @Test("pagesize= values", arguments: [("2M", 2 << 20), ("1G", 1 << 30), ("1024M", 1 << 30), ("2048K", 2 << 20), ("2097152", 2 << 20)])
    func optionValues(text: String, bytes: Int) {
        #expect(HugepageSize(mountOptionValue: text)?.bytes == bytes)
    }

    @Test("written forms")
    func writtenForms() {
        #expect(HugepageSize.twoMiB.mountOptionValue == "2M")
        #expect(HugepageSize.oneGiB.mountOptionValue == "1G")
        #expect(HugepageSize.twoMiB.description == "2 MiB")
        #expect(HugepageSize.oneGiB.description == "1 GiB")
    }

    @Test("mountinfo: hugetlbfs lines with their page size, escaped mount points, other filesystems skipped")
    func mountinfo() {
        let text = """
        22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
        40 22 0:37 / /dev/hugepages rw,relatime shared:13 - hugetlbfs hugetlbfs rw,pagesize=2M
        41 22 0:38 / /run/qarax/huge\\040pages-1G rw,nosuid,nodev,noexec,relatime - hugetlbfs none rw,pagesize=1024M,mode=1777
        42 22 0:39 / /mnt/odd rw - hugetlbfs none rw
        43 22 0:40 / /tmp rw - tmpfs tmpfs rw,pagesize=2M
        """
        #expect(HugetlbfsMount.parse(mountinfo: text) == [
            HugetlbfsMount(mountPoint: "/dev/hugepages", pageSize: .twoMiB),
            HugetlbfsMount(mountPoint: "/run/qarax/huge pages-1G", pageSize: .oneGiB),
        ])
    }

    @Test("this host's pools read consistently", .enabled(if: hostHasHugepages, "no hugepage support"))
    func readsPools() throws {
        let sysfs = HugepageSysfs()
        let sizes = try sysfs.pageSizes()
        #expect(sizes.contains(.twoMiB))
        for size in sizes {
            let pool = try sysfs.pool(size)
            #expect(pool.free <= pool.total + pool.surplus)
            #expect(pool.reserved <= pool.free)
            for node in try sysfs.numaNodes() {
                let local = try sysfs.pool(size, node: node)
                #expect(local.free <= local.total + local.surplus)
            }
        }
    }

    @Test("a missing pool is an ENOENT naming the file")
    func missingPool() {
        #expect {
            try HugepageSysfs().pool(HugepageSize(bytes: 3 << 20))
        } throws: { error in
            guard let error = error as? SystemError else { return false }
            return error.errno == ENOENT && error.operation.contains("hugepages-3072kB/nr_hugepages")
        }
    }
}

private let hostHasHugepages = (try? HugepageSysfs().pageSizes().isEmpty) == false
