import CShims
import Dispatch
import Glibc
import Synchronization
import LinuxSys
import NodeCore
import Testing
import VMModel

private let isRoot = getuid() == 0
private let hasHugepages = (try? HugepageSysfs().pageSizes().contains(.twoMiB)) == true

@Suite("Hugepages: needs and messages")
struct HostHugepageNeedTests {
    @Test("a VM's need: boot memory over the page size, none without hugepages")
    func needs() {
        #expect(HugepageNeed(memory: MemorySpec(size: .mebibytes(256), hugepages: true))
            == HugepageNeed(pageSize: .twoMiB, pages: 128))
        #expect(HugepageNeed(memory: MemorySpec(size: .gibibytes(2), hugepages: true, hugepageSize: .gibibytes(1)), numaNode: 0)
            == HugepageNeed(pageSize: .oneGiB, pages: 2, numaNode: 0))
        #expect(HugepageNeed(memory: MemorySpec(size: .mebibytes(256), hotplugSize: .gibibytes(1), hugepages: true))?.pages == 128)
        #expect(HugepageNeed(memory: MemorySpec(size: .mebibytes(256))) == nil)
    }

    @Test("a shortage says how many pages of which size are missing")
    func shortageMessage() {
        let error = HugepageError.shortage(need: HugepageNeed(pageSize: .twoMiB, pages: 128), available: 100)
        #expect(error.description == "memory: needs 128 free 2 MiB hugepages, 100 are free: 28 missing")
        let onNode = HugepageError.shortage(need: HugepageNeed(pageSize: .oneGiB, pages: 2, numaNode: 1), available: 0)
        #expect(onNode.description == "memory: needs 2 free 1 GiB hugepages on NUMA node 1, 0 are free: 2 missing")
    }

    @Test("unknown page sizes and NUMA nodes are refused before anything changes",
          .enabled(if: hasHugepages, "no hugepage support"))
    func unknownPoolOrNode() throws {
        let ledger = HugepageLedger()
        #expect(throws: HugepageError.unsupportedPageSize(HugepageSize(bytes: 4 << 20),
                                                          supported: try HugepageSysfs().pageSizes())) {
            try ledger.reserve(HugepageNeed(pageSize: HugepageSize(bytes: 4 << 20), pages: 1), for: "vm", autoReserve: true)
        }
        #expect(throws: HugepageError.noSuchNode(4096, nodes: try HugepageSysfs().numaNodes())) {
            try ledger.reserve(HugepageNeed(pageSize: .twoMiB, pages: 1, numaNode: 4096), for: "vm", autoReserve: true)
        }
        #expect(ledger.reservations.isEmpty)
    }
}

/// Saves the persistent page counts this suite may change and puts them back.
private struct PoolCounts {
    let sysfs = HugepageSysfs()
    var saved: [(HugepageSize, Int?, Int)] = []

    init() throws {
        for size in try sysfs.pageSizes() {
            saved.append((size, nil, try sysfs.pool(size).total))
            for node in try sysfs.numaNodes() {
                saved.append((size, node, try sysfs.pool(size, node: node).total))
            }
        }
    }

    func total(_ size: HugepageSize, node: Int? = nil) -> Int? {
        saved.first { $0.0 == size && $0.1 == node }?.2
    }

    func restore() {
        for (size, node, total) in saved where node == nil {
            _ = try? sysfs.setTotal(total, size: size)
        }
    }
}

/// Maps `pages` hugepages of 2 MiB from a memfd and touches them; undone by `unmap`.
private struct HugeMapping {
    let fd: Int32
    let address: UnsafeMutableRawPointer
    let length: Int

    init(pages: Int, size: HugepageSize = .twoMiB, fd existing: Int32? = nil) throws {
        let flags: UInt32 = 4 | (21 << 26)  // MFD_HUGETLB | MFD_HUGE_2MB
        let descriptor = existing ?? qx_memfd_create("qarax-test", flags)
        guard descriptor >= 0 else { throw SystemError("memfd_create(MFD_HUGETLB)", negated: descriptor) }
        length = pages * size.bytes
        guard ftruncate(descriptor, off_t(length)) == 0 else {
            let code = errno
            close(descriptor)
            throw SystemError("ftruncate", errno: code)
        }
        let mapped = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, descriptor, 0)
        guard let mapped, mapped != MAP_FAILED else {
            let code = errno
            close(descriptor)
            throw SystemError("mmap", errno: code)
        }
        for page in 0..<pages { mapped.storeBytes(of: 0x5a, toByteOffset: page * size.bytes, as: UInt8.self) }
        self.fd = descriptor
        self.address = mapped
    }

    func unmap() {
        munmap(address, length)
        close(fd)
    }
}

/// These tests change the host's hugepage counts: one at a time, every count put back.
@Suite("Hugepages: reservations on the real kernel", .serialized, .hugepagePool,
       .enabled(if: isRoot && hasHugepages, "needs root and hugepage support"))
struct HostHugepageTests {
    let sysfs = HugepageSysfs()

    @Test("auto-reserve raises nr_hugepages by what is missing; release gives exactly that back")
    func reserveAndRelease() throws {
        let counts = try PoolCounts()
        defer { counts.restore() }
        let ledger = HugepageLedger()
        let available = try ledger.available(HugepageNeed(pageSize: .twoMiB, pages: 0))
        let need = HugepageNeed(pageSize: .twoMiB, pages: available + 3)

        let reservation = try ledger.reserve(need, for: "web1", autoReserve: true)
        #expect(reservation.addedPages == 3)
        #expect(try sysfs.pool(.twoMiB).total == (counts.total(.twoMiB) ?? 0) + 3)
        #expect(try ledger.release(reservation) == 3)
        #expect(try sysfs.pool(.twoMiB).total == counts.total(.twoMiB))
        #expect(ledger.addedPages(.twoMiB) == 0)
    }

    @Test("without auto-reserve a shortage is refused with the exact count missing, nothing changed")
    func shortageRefused() throws {
        let counts = try PoolCounts()
        defer { counts.restore() }
        let ledger = HugepageLedger()
        let available = try ledger.available(HugepageNeed(pageSize: .twoMiB, pages: 0))
        let need = HugepageNeed(pageSize: .twoMiB, pages: available + 28)
        #expect {
            try ledger.reserve(need, for: "web1", autoReserve: false)
        } throws: { error in
            (error as? HugepageError) == .shortage(need: need, available: available)
                && "\(error)" == "memory: needs \(available + 28) free 2 MiB hugepages, \(available) are free: 28 missing"
        }
        #expect(try sysfs.pool(.twoMiB).total == counts.total(.twoMiB))
        #expect(ledger.reservations.isEmpty)
    }

    @Test("two VMs never count the same free pages, even reserving at the same moment")
    func noDoubleCounting() throws {
        let counts = try PoolCounts()
        defer { counts.restore() }
        try sysfs.setTotal(try #require(counts.total(.twoMiB)) + 4, size: .twoMiB)
        let ledger = HugepageLedger()
        let available = try ledger.available(HugepageNeed(pageSize: .twoMiB, pages: 0))
        try #require(available >= 4)
        let each = available / 2 + 1

        let results = Mutex<[Result<HugepageReservation, HugepageError>]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            let result = Result { () throws(HugepageError) -> HugepageReservation in
                try ledger.reserve(HugepageNeed(pageSize: .twoMiB, pages: each), for: "vm\(index)", autoReserve: false)
            }
            results.withLock { $0.append(result) }
        }
        let granted = results.withLock { $0.compactMap { try? $0.get() } }
        let refused: [HugepageError] = results.withLock { all in
            all.compactMap { result -> HugepageError? in
                if case .failure(let error) = result { return error }
                return nil
            }
        }
        #expect(granted.count == 1)
        #expect(refused == [.shortage(need: HugepageNeed(pageSize: .twoMiB, pages: each), available: available - each)])
        for reservation in granted { try ledger.release(reservation) }
    }

    @Test("a memfd_create(MFD_HUGETLB) mapping gets its pages after the reservation")
    func memfdGetsPages() throws {
        let counts = try PoolCounts()
        defer { counts.restore() }
        let ledger = HugepageLedger()
        let reservation = try ledger.reserve(HugepageNeed(pageSize: .twoMiB, pages: 2), for: "web1", autoReserve: true)
        let freeBefore = try sysfs.pool(.twoMiB).free
        let mapping = try HugeMapping(pages: 2)
        #expect(try sysfs.pool(.twoMiB).free == freeBefore - 2)
        ledger.markBacked(reservation)
        mapping.unmap()
        try ledger.release(reservation)
        #expect(try sysfs.pool(.twoMiB).total == counts.total(.twoMiB))
    }

    @Test("release gives back only free pages; the rest goes back on a later release")
    func releaseOnlyFreePages() throws {
        let counts = try PoolCounts()
        defer { counts.restore() }
        let ledger = HugepageLedger()
        let available = try ledger.available(HugepageNeed(pageSize: .twoMiB, pages: 0))
        let first = try ledger.reserve(HugepageNeed(pageSize: .twoMiB, pages: available + 2), for: "a", autoReserve: true)
        #expect(first.addedPages == 2)
        let mapping = try HugeMapping(pages: available + 2)
        ledger.markBacked(first)
        #expect(try ledger.release(first) == 0, "every page is still mapped")
        #expect(ledger.addedPages(.twoMiB) == 2)
        mapping.unmap()
        #expect(try ledger.giveBackUnused() == 2)
        #expect(try sysfs.pool(.twoMiB).total == counts.total(.twoMiB))
    }

    @Test("a reservation on NUMA node 0 raises that node's pool and gives it back")
    func numaNode() throws {
        let counts = try PoolCounts()
        defer { counts.restore() }
        try #require(try sysfs.numaNodes().contains(0))
        let ledger = HugepageLedger()
        let nodeBefore = try sysfs.pool(.twoMiB, node: 0).total
        let available = try ledger.available(HugepageNeed(pageSize: .twoMiB, pages: 0, numaNode: 0))
        let reservation = try ledger.reserve(HugepageNeed(pageSize: .twoMiB, pages: available + 2, numaNode: 0),
                                             for: "web1", autoReserve: true)
        #expect(try sysfs.pool(.twoMiB, node: 0).total == nodeBefore + 2)
        try ledger.release(reservation)
        #expect(try sysfs.pool(.twoMiB, node: 0).total == nodeBefore)
    }

    @Test("one 1 GiB page can be reserved and given back")
    func oneGiBPage() throws {
        try #require(try sysfs.pageSizes().contains(.oneGiB))
        let counts = try PoolCounts()
        defer { counts.restore() }
        let ledger = HugepageLedger()
        let available = try ledger.available(HugepageNeed(pageSize: .oneGiB, pages: 0))
        let reservation = try ledger.reserve(HugepageNeed(pageSize: .oneGiB, pages: available + 1), for: "big", autoReserve: true)
        #expect(reservation.addedPages == 1)
        try ledger.release(reservation)
        #expect(try sysfs.pool(.oneGiB).total == counts.total(.oneGiB))
    }

    @Test("a hugetlbfs is mounted when none exists, found afterwards, and backs a file mapping")
    func hugetlbfsMount() throws {
        let counts = try PoolCounts()
        defer { counts.restore() }
        let base = "/tmp/qarax-hugetlbfs-\(getpid())"
        // /dev/null as mountinfo: "no mount exists", so ensure() must mount one.
        let provisioner = HugetlbfsProvisioner(baseDirectory: base, mode: 0o700, mountinfoPath: "/dev/null")
        let provisioned = try provisioner.ensure(.twoMiB)
        defer {
            try? provisioned.mount.unmount()
            rmdir(provisioned.mount.mountPoint)
            rmdir(base)
        }
        #expect(provisioned.mountedNow)
        #expect(provisioned.mount.mountPoint == "\(base)/hugepages-2M")
        #expect(try HugetlbfsMount.all().contains(provisioned.mount))
        let again = try HugetlbfsProvisioner(baseDirectory: base).ensure(.twoMiB)
        #expect(!again.mountedNow && again.mount.pageSize == .twoMiB)

        let ledger = HugepageLedger()
        let reservation = try ledger.reserve(HugepageNeed(pageSize: .twoMiB, pages: 1), for: "web1", autoReserve: true)
        let path = "\(provisioned.mount.mountPoint)/guest-ram"
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        unlink(path)
        let freeBefore = try sysfs.pool(.twoMiB).free
        let mapping = try HugeMapping(pages: 1, fd: fd)
        #expect(try sysfs.pool(.twoMiB).free == freeBefore - 1)
        mapping.unmap()
        try ledger.release(reservation)
    }

    @Test("preparing a spec: refused with the count missing, or mount ensured and pages reserved")
    func prepareSpec() throws {
        let counts = try PoolCounts()
        defer { counts.restore() }
        let base = "/tmp/qarax-prepare-\(getpid())"
        let settings = HugepageSettings(autoReserve: false, provisioner: HugetlbfsProvisioner(baseDirectory: base))
        let ledger = HugepageLedger()
        let available = try ledger.available(HugepageNeed(pageSize: .twoMiB, pages: 0))
        let pages = available + 5
        let spec = VMSpec(name: "web1", cpus: CPUSpec(bootVCPUs: 1),
                          memory: MemorySpec(size: .mebibytes(2 * pages), hugepages: true),
                          payload: PayloadSpec(kernel: "/srv/images/vmlinux"))

        #expect(throws: HugepageError.shortage(need: HugepageNeed(pageSize: .twoMiB, pages: pages), available: available)) {
            try ledger.prepare(for: spec, vm: "web1", settings: settings)
        }
        #expect(try sysfs.pool(.twoMiB).total == counts.total(.twoMiB))

        var auto = settings
        auto.autoReserve = true
        #expect(try HugetlbfsMount.all().allSatisfy { !$0.mountPoint.hasPrefix(base) }, "a refusal mounts nothing")
        defer {
            for mount in (try? HugetlbfsMount.all()) ?? [] where mount.mountPoint.hasPrefix(base) {
                try? mount.unmount()
                rmdir(mount.mountPoint)
            }
            rmdir(base)
        }
        let prepared = try #require(try ledger.prepare(for: spec, vm: "web1", settings: auto))
        #expect(prepared.reservation.need == HugepageNeed(pageSize: .twoMiB, pages: pages))
        #expect(prepared.reservation.addedPages == 5)
        #expect(try HugetlbfsMount.all().contains(prepared.mount))
        try ledger.release(prepared.reservation)
        #expect(try sysfs.pool(.twoMiB).total == counts.total(.twoMiB))

        var plain = spec
        plain.memory.hugepages = false
        #expect(try ledger.prepare(for: plain, vm: "web1", settings: auto) == nil)
    }

    @Test("HugepageSysfs.setTotal answers the count the kernel reached")
    func setTotalRoundTrip() throws {
        let counts = try PoolCounts()
        defer { counts.restore() }
        let start = try #require(counts.total(.twoMiB))
        #expect(try sysfs.setTotal(start + 1, size: .twoMiB) == start + 1)
        #expect(try sysfs.setTotal(start, size: .twoMiB) == start)
    }
}
