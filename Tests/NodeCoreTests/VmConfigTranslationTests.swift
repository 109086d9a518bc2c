import CloudHypervisorAPI
import Foundation
import Testing
import VMModel
@testable import NodeCore

/// What a golden file holds: the `vm.create` body and the `vm.add-net` calls, in order.
private struct GoldenPlan: Encodable {
    struct Attachment: Encodable {
        let body: NetConfig
        let fds: Int
    }

    let vmCreate: VmConfig
    let vmAddNet: [Attachment]

    enum CodingKeys: String, CodingKey {
        case vmCreate = "vm.create", vmAddNet = "vm.add-net"
    }

    init(_ plan: CloudHypervisorVMPlan) {
        vmCreate = plan.vmConfig
        vmAddNet = plan.netAttachments.map { Attachment(body: $0.body, fds: $0.fileDescriptorCount) }
    }
}

private enum Golden {
    static let cases = ["minimal", "full", "hugepages-macvtap", "firmware-file-console"]

    static func data(_ name: String) throws -> Data {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Golden"))
        return try Data(contentsOf: url)
    }

    static func spec(_ name: String) throws -> VMSpec {
        try VMSpec.decode(json: data("\(name).spec"))
    }

    /// What the node would prepare: one host device per TAP/MACVTAP NIC, the spec's MAC or a fixed one.
    static func prepared(_ spec: VMSpec) -> [PreparedNIC] {
        spec.nics.enumerated().compactMap { index, nic in
            guard nic.kind != .vhostUser else { return nil }
            let mac = nic.mac.flatMap(MACAddress.init) ?? MACAddress(octets: [0x02, 0x51, 0x58, 0, 0, UInt8(index)])
            return PreparedNIC(id: nic.id, interfaceName: "qx\(index)", queuePairs: nic.numQueues / 2, mac: mac)
        }
    }

    static func plan(_ name: String) throws -> CloudHypervisorVMPlan {
        let spec = try spec(name)
        return try VmConfigTranslation.plan(for: spec, preparedNICs: prepared(spec),
                                            defaultVsockSocket: "/run/qarax/vms/\(spec.name)/vsock.sock")
    }

    static func render(_ plan: CloudHypervisorVMPlan) throws -> Data {
        try CloudHypervisorJSON.encode(GoldenPlan(plan), pretty: true) + Data("\n".utf8)
    }
}

@Suite struct VmConfigTranslationTests {
    /// Set QARAX_UPDATE_GOLDEN=1 to rewrite the expected files in the source tree.
    @Test(arguments: Golden.cases)
    func matchesGoldenFileByteForByte(name: String) throws {
        let actual = try Golden.render(Golden.plan(name))
        if ProcessInfo.processInfo.environment["QARAX_UPDATE_GOLDEN"] == "1" {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Golden/\(name).plan.json")
            try actual.write(to: url)
        }
        let expected = try Golden.data("\(name).plan")
        #expect(String(decoding: actual, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
    }

    @Test(arguments: Golden.cases)
    func everyBodyValidatesAgainstTheOpenAPIDocument(name: String) throws {
        let validator = try OpenAPISchemaValidator.cloudHypervisor()
        let plan = try Golden.plan(name)
        #expect(validator.validate(encoding: plan.vmConfig, against: "VmConfig") == [])
        for attachment in plan.netAttachments {
            #expect(validator.validate(encoding: attachment.body, against: "NetConfig") == [])
        }
        let golden = try JSONValue(json: Golden.data("\(name).plan"))
        #expect(validator.validate(try #require(golden["vm.create"]), against: "VmConfig") == [])
    }

    @Test func fullSpecTranslatesEveryField() throws {
        let plan = try Golden.plan("full")
        let config = plan.vmConfig
        #expect(config.cpus == CpusConfig(bootVcpus: 2, maxVcpus: 4,
                                          topology: CpuTopology(threadsPerCore: 1, coresPerDie: 2, diesPerPackage: 1, packages: 2),
                                          kvmHyperv: true, affinity: [CpuAffinity(vcpu: 0, hostCpus: [0, 1]), CpuAffinity(vcpu: 1, hostCpus: [1])]))
        #expect(config.memory == MemoryConfig(size: 1 << 30, hotplugSize: 1 << 30, mergeable: false, shared: true, hugepages: false,
                                              prefault: true, thp: false))
        #expect(config.disks?.map(\.id) == ["root", "data", "scratch", "blk-vu"])
        #expect(config.disks?[1].rateLimitGroup == "io" && config.disks?[1].readonly == true && config.disks?[1].direct == true)
        #expect(config.disks?[3].vhostUser == true && config.disks?[3].path == nil)
        #expect(config.net == [NetConfig(mac: "02:00:00:00:00:02", mtu: 1500, numQueues: 2, queueSize: 256, vhostUser: true,
                                         vhostSocket: "/run/qarax/vhost/web-1/net.sock", vhostMode: .server, id: "net2", pciSegment: 0,
                                         offloadTso: true, offloadUfo: true, offloadCsum: true)])
        #expect(plan.netAttachments.map(\.nicID) == ["net0", "net1"])
        #expect(plan.netAttachments.map(\.fileDescriptorCount) == [1, 2])
        let tap = plan.netAttachments[0].body
        #expect(tap.tap == nil && tap.mtu == nil && tap.hostMac == nil, "host-side settings are the node's, never the VMM's")
        #expect(tap.mac == "52:54:00:12:34:56")
        #expect(plan.netAttachments[1].body.rateLimiterConfig?.bandwidth == TokenBucket(size: 12_500_000, oneTimeBurst: 1_048_576, refillTime: 100))
        #expect(config.serial == SerialConfig(mode: .socket, socket: "/run/qarax/vms/web-1/serial.sock"))
        #expect(config.console == ConsoleConfig(mode: .off))
        #expect(config.rng == RngConfig(src: "/dev/random"))
        #expect(config.vsock == VsockConfig(cid: 3, socket: "/run/qarax/vms/web-1/vsock.sock"))
        #expect(config.rateLimitGroups?.first?.rateLimiterConfig.ops == TokenBucket(size: 500, refillTime: 100))
        #expect(config.platform == nil)
    }

    @Test func serialAndConsoleAreAlwaysExplicit() throws {
        let config = try Golden.plan("minimal").vmConfig
        #expect(config.serial == SerialConfig(mode: .null))
        #expect(config.console == ConsoleConfig(mode: .off))
        #expect(config.rng == RngConfig(src: "/dev/urandom"))
    }

    @Test func hugepagesAndSegmentsAreExplicit() throws {
        let config = try Golden.plan("hugepages-macvtap").vmConfig
        #expect(config.memory?.hugepages == true && config.memory?.hugepageSize == 1 << 30)
        #expect(config.platform == PlatformConfig(numPciSegments: 2))
    }

    @Test func refusesInvalidSpecsWithEveryProblem() throws {
        var spec = try Golden.spec("full")
        spec.nics[1].mtu = 70000
        spec.cpus.bootVCPUs = 0
        let error = try #require(throws: VmConfigTranslationError.self) {
            try VmConfigTranslation.plan(for: spec, preparedNICs: Golden.prepared(spec))
        }
        guard case .invalidSpec(let invalid) = error else { Issue.record("\(error)"); return }
        #expect(invalid.problems.map(\.description).contains("nics[1].mtu: 70000 is above 65535"))
        #expect(invalid.problems.map(\.field).contains("cpus.boot_vcpus"))
    }

    @Test func refusesMismatchedHostPreparation() throws {
        let spec = try Golden.spec("full")
        let prepared = Golden.prepared(spec)
        let mac = try #require(MACAddress("02:00:00:00:00:09"))
        #expect(throws: VmConfigTranslationError.nicNotPrepared(field: "nics[1]", id: "net1")) {
            try VmConfigTranslation.plan(for: spec, preparedNICs: [prepared[0]], defaultVsockSocket: "/v")
        }
        #expect(throws: VmConfigTranslationError.queuePairMismatch(field: "nics[1]", expected: 2, prepared: 1)) {
            try VmConfigTranslation.plan(for: spec, preparedNICs: [prepared[0], PreparedNIC(id: "net1", interfaceName: "qx1", queuePairs: 1, mac: mac)],
                                         defaultVsockSocket: "/v")
        }
        #expect(throws: VmConfigTranslationError.unexpectedPreparedNIC(id: "net2")) {
            try VmConfigTranslation.plan(for: spec, preparedNICs: prepared + [PreparedNIC(id: "net2", interfaceName: "x", queuePairs: 1, mac: mac)],
                                         defaultVsockSocket: "/v")
        }
        #expect(throws: VmConfigTranslationError.vsockSocketMissing) {
            try VmConfigTranslation.plan(for: spec, preparedNICs: prepared)
        }
    }

    /// Variants of the full specification, one feature changed each; every plan must validate.
    static let variants: [(String, @Sendable (inout VMSpec) -> Void)] = [
        ("serial off", { $0.serial = ConsoleSpec(mode: .off) }),
        ("serial pty", { $0.serial = ConsoleSpec(mode: .pty) }),
        ("serial tty, console tty", { $0.serial = ConsoleSpec(mode: .tty); $0.console = ConsoleSpec(mode: .tty) }),
        ("serial file", { $0.serial = ConsoleSpec(mode: .file, path: "/run/qarax/serial.log") }),
        ("console null", { $0.console = ConsoleSpec(mode: .null) }),
        ("console pty", { $0.console = ConsoleSpec(mode: .pty) }),
        ("hugepages 2M", { $0.memory.hugepages = true; $0.memory.shared = false }),
        ("no hotplug, no topology", { $0.memory.hotplugSize = nil; $0.cpus.topology = nil; $0.cpus.affinity = [] }),
        ("firmware", { $0.payload = PayloadSpec(firmware: "/var/lib/qarax/images/fw") }),
        ("no vsock, no disks", { $0.vsock = nil; $0.disks = []; $0.rateLimitGroups = [] }),
        ("vhost-user client without mac", { $0.nics[2].vhostMode = nil; $0.nics[2].mac = nil; $0.nics[2].mtu = nil }),
        ("iommu nic on segment 95", { $0.nics[0].iommu = true; $0.nics[0].pciSegment = 95 }),
        ("macvtap private 8 pairs", { $0.cpus = CPUSpec(bootVCPUs: 8); $0.nics[1].mode = .private; $0.nics[1].numQueues = 16 }),
    ]

    @Test(arguments: 0..<variants.count)
    func everyVariantTranslatesToValidBodies(index: Int) throws {
        let (label, change) = Self.variants[index]
        var spec = try Golden.spec("full")
        change(&spec)
        #expect(spec.validate() == [], "\(label)")
        let plan = try VmConfigTranslation.plan(for: spec, preparedNICs: Golden.prepared(spec), defaultVsockSocket: "/run/v.sock")
        let validator = try OpenAPISchemaValidator.cloudHypervisor()
        #expect(validator.validate(encoding: plan.vmConfig, against: "VmConfig") == [], "\(label)")
        for attachment in plan.netAttachments {
            #expect(validator.validate(encoding: attachment.body, against: "NetConfig") == [], "\(label)")
        }
    }

    @Test func hotplugBodiesValidate() throws {
        let validator = try OpenAPISchemaValidator.cloudHypervisor()
        let spec = try Golden.spec("full")
        let net = VmConfigTranslation.hotplugNet(spec.nics[0], host: Golden.prepared(spec)[0])
        #expect(validator.validate(encoding: net, against: "NetConfig") == [])
        #expect(validator.validate(encoding: VmConfigTranslation.hotplugDisk(spec.disks[2]), against: "DiskConfig") == [])
    }
}
