import Foundation
import Testing
import CloudHypervisorAPI

@Suite struct APITypesTests {
    static let full = VmConfig(
        cpus: CpusConfig(bootVcpus: 2, maxVcpus: 4, topology: CpuTopology(threadsPerCore: 1, coresPerDie: 2, diesPerPackage: 1, packages: 2),
                         kvmHyperv: false, maxPhysBits: 46, nested: true, affinity: [CpuAffinity(vcpu: 0, hostCpus: [0, 1])]),
        memory: MemoryConfig(size: 1 << 30, hotplugSize: 1 << 30, hotpluggedSize: 0, mergeable: false, hotplugMethod: "Acpi",
                             shared: true, hugepages: false, hugepageSize: 2 << 20, prefault: false, reserve: false, thp: true),
        payload: PayloadConfig(firmware: nil, kernel: "/k", cmdline: "c", initramfs: "/i"),
        rateLimitGroups: [RateLimitGroupConfig(id: "g", rateLimiterConfig: RateLimiterConfig(ops: TokenBucket(size: 1, refillTime: 1)))],
        disks: [DiskConfig(path: "/d", readonly: true, direct: true, iommu: false, numQueues: 1, queueSize: 128, vhostUser: false,
                           rateLimiterConfig: RateLimiterConfig(bandwidth: TokenBucket(size: 1, oneTimeBurst: 2, refillTime: 3)),
                           pciSegment: 0, pciDeviceId: 5, id: "root", serial: "s")],
        net: [NetConfig(tap: "tap0", mac: "52:54:00:00:00:01", hostMac: "52:54:00:00:00:02", mtu: 1500, iommu: false, numQueues: 2,
                        queueSize: 256, vhostUser: false, id: "net0", pciSegment: 0, offloadTso: true, offloadUfo: true, offloadCsum: true),
              NetConfig(numQueues: 2, vhostUser: true, vhostSocket: "/s", vhostMode: .server, id: "net1")],
        rng: RngConfig(src: "/dev/urandom"),
        serial: SerialConfig(mode: .socket, socket: "/serial"),
        console: ConsoleConfig(mode: .file, file: "/console.log"),
        vsock: VsockConfig(cid: 3, socket: "/v", id: "vsock0"),
        iommu: false,
        platform: PlatformConfig(numPciSegments: 2)
    )

    @Test func fullConfigValidatesStrictlyAndRoundTrips() throws {
        let validator = try OpenAPISchemaValidator.cloudHypervisor()
        #expect(validator.validate(encoding: Self.full, against: "VmConfig") == [])
        let data = try CloudHypervisorJSON.encode(Self.full)
        #expect(try CloudHypervisorJSON.decode(VmConfig.self, from: data) == Self.full)
    }

    @Test func nilPropertiesAreOmittedNotNull() throws {
        let text = String(decoding: try CloudHypervisorJSON.encode(VmConfig(payload: PayloadConfig(kernel: "/k"))), as: UTF8.self)
        #expect(text == #"{"payload":{"kernel":"/k"}}"#)
        #expect(String(decoding: try CloudHypervisorJSON.encode(VmResize(desiredVcpus: 2)), as: UTF8.self) == #"{"desired_vcpus":2}"#)
    }

    @Test func everyRequestBodyValidatesAgainstItsSchema() throws {
        let validator = try OpenAPISchemaValidator.cloudHypervisor()
        #expect(validator.validate(encoding: VmResize(desiredVcpus: 2, desiredRam: 1 << 30, desiredBalloon: 0), against: "VmResize") == [])
        #expect(validator.validate(encoding: VmRemoveDevice(id: "net0"), against: "VmRemoveDevice") == [])
        #expect(validator.validate(encoding: DeviceConfig(path: "/sys/bus/pci/devices/0000:01:00.0", iommu: true, id: "gpu"), against: "DeviceConfig") == [])
        #expect(validator.validate(encoding: Self.full.net?.first, against: "NetConfig") == [])
        #expect(validator.validate(encoding: Self.full.disks?.first, against: "DiskConfig") == [])
        #expect(validator.validate(encoding: Self.full.vsock, against: "VsockConfig") == [])
        #expect(validator.validate(encoding: VmResize(desiredVcpus: 0), against: "VmResize").map(\.path) == ["$.desired_vcpus"])
    }

    @Test func responsesDecodeFromWhatTheVMMSends() throws {
        let added = try CloudHypervisorJSON.decode(PciDeviceInfo.self, from: Data(#"{"id":"net0","bdf":"0000:00:03.0"}"#.utf8))
        #expect(added == PciDeviceInfo(id: "net0", bdf: "0000:00:03.0"))
        let ping = try CloudHypervisorJSON.decode(VmmPingResponse.self, from: Data(
            #"{"build_version":"v52.0","version":"52.0.0","pid":1234,"features":["kvm","io_uring"]}"#.utf8))
        #expect(ping.pid == 1234 && ping.features == ["kvm", "io_uring"])
        let counters = try CloudHypervisorJSON.decode(VmCounters.self, from: Data(#"{"_net2":{"rx_bytes":10,"tx_frames":18446744073709551615}}"#.utf8))
        #expect(counters.devices["_net2"]?["tx_frames"] == UInt64.max)
        let info = try CloudHypervisorJSON.decode(VmInfo.self, from: Data(#"""
            {"config":{"cpus":{"boot_vcpus":1,"max_vcpus":1,"kvm_hyperv":false,"max_phys_bits":46,"features":{"amx":false},"nested":true,"core_scheduling":"Vm"},
             "memory":{"size":268435456,"mergeable":false,"hotplug_method":"Acpi","shared":false,"hugepages":false,"prefault":false,"reserve":false,"thp":true},
             "payload":{"kernel":"/k"},"serial":{"mode":"Tty"},"console":{"mode":"Off","iommu":false},"rng":{"src":"/dev/urandom","iommu":false},
             "net":[{"tap":"tap0","mac":"52:54:00:00:00:01","num_queues":2,"queue_size":256,"vhost_user":false,"vhost_mode":"Client","id":"_net0","fds":[-1]}],
             "iommu":false,"watchdog":false,"pvpanic":false},
             "state":"Running","memory_actual_size":268435456,
             "device_tree":{"_net0":{"id":"_net0","resources":[{"PciBar":{"index":0}}],"children":[],"pci_bdf":"0000:00:03.0"}}}
            """#.utf8))
        #expect(info.state == .running)
        #expect(info.config.net?.first?.tap == "tap0" && info.config.serial?.mode == .tty)
        #expect(info.deviceTree?["_net0"]?.pciBdf == "0000:00:03.0")
        #expect(info.deviceTree?["_net0"]?.resources == [.object(["PciBar": .object(["index": .integer(0)])])])
    }
}
