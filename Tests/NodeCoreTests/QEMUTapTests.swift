#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinuxSys
import NodeCore
import Testing
import VMModel

/// A multi-queue TAP handed to QEMU as descriptors: QEMU holds the device, and it goes away with
/// QEMU (the TAP is not persistent, so nothing is left behind even when a test fails).
@Suite(.serialized, .enabled(if: QEMUTapHost.available, "needs root, /dev/net/tun, /dev/kvm and qemu-system-x86_64"))
struct QEMUTapTests {
    @Test func qemuHoldsTheTapQueuesAndReleasesThemOnQuit() async throws {
        let name = "qxq\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        var queues = try (0..<2).map { _ in try QEMUTapHost.openQueue(name: name) }
        defer { for fd in queues { close(fd) } }
        #expect(access("/sys/class/net/\(name)", F_OK) == 0)

        var spec = QEMUTestVM.tinySpec(name: "qmp-tap")
        spec.cpus = CPUSpec(bootVCPUs: 2)
        spec.nics = [NICSpec(id: "eth0", kind: .tap, mtu: 9000, numQueues: 4)]
        let mac = MACAddress(octets: [0x02, 0x51, 0x72, 0xaa, 0xbb, 0xcc])
        let vm = try QEMUTestVM.launch(spec: spec, hostNICs: [(id: "eth0", fds: queues, mac: mac)])
        defer { vm.destroy() }
        // Only QEMU holds the queues now.
        for fd in queues { close(fd) }
        queues = []

        try await vm.console.waitFor(QEMUBootTests.marker, occurrences: 1)
        let qmp = try await QMPClient.connect(socketPath: vm.qmpPath)
        defer { qmp.close() }
        #expect(access("/sys/class/net/\(name)", F_OK) == 0, "the TAP lives on in QEMU")
        let tunFDs = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(vm.pid)/fd").filter { entry in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(vm.pid)/fd/\(entry)")) == "/dev/net/tun"
        }
        #expect(tunFDs.count == 2, "one descriptor per queue pair in QEMU")
        let queried = try await qmp.execute("qom-get", arguments: ["path": .string("/machine/peripheral/eth0"), "property": .string("mac")])
        #expect(queried == .string(mac.description))
        let mtu = try await qmp.execute("qom-get", arguments: ["path": .string("/machine/peripheral/eth0"), "property": .string("host_mtu")])
        #expect(mtu == .int(9000))
        let filter = try await qmp.execute("query-rx-filter", arguments: ["name": .string("eth0")])
        #expect(filter.description.contains("\"main-mac\":\"\(mac.description)\""))

        try await qmp.quit()
        #expect(try await vm.waitForExit() == .exited(0))
        #expect(access("/sys/class/net/\(name)", F_OK) != 0, "the TAP is gone with QEMU")
    }
}

enum QEMUTapHost {
    static let available = getuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0 && QEMUBootHost.available

    /// `TUNSETIFF` = `_IOW('T', 202, int)`.
    private static let tunSetIff: UInt = 0x4004_54ca
    private static let flags: Int16 = 0x0002 | 0x1000 | 0x4000 | 0x0100  // IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE

    /// Opens one queue of the multi-queue TAP `name`, creating it on the first call.
    static func openQueue(name: String) throws -> Int32 {
        let fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open /dev/net/tun", errno: errno) }
        var request = [UInt8](repeating: 0, count: 40)  // struct ifreq: name[16], then ifr_flags
        for (index, byte) in name.utf8.prefix(15).enumerated() { request[index] = byte }
        withUnsafeBytes(of: flags.littleEndian) { request.replaceSubrange(16..<18, with: $0) }
        let result = request.withUnsafeMutableBytes { bytes -> Int32 in
            guard let base = bytes.baseAddress else { return -1 }
            return ioctl(fd, tunSetIff, base)
        }
        guard result == 0 else {
            let error = SystemError("ioctl(TUNSETIFF) \(name)", errno: errno)
            close(fd)
            throw error
        }
        return fd
    }
}
