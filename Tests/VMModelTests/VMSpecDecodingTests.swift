import Foundation
import Testing
import VMModel

@Suite struct VMSpecDecodingTests {
    static let minimalJSON = #"""
    {"name": "tiny", "cpus": {"boot_vcpus": 1}, "memory": {"size": "256M"},
     "payload": {"kernel": "/var/lib/qarax/images/pvh.elf"}}
    """#

    @Test func minimalDocumentGetsDocumentedDefaults() throws {
        let spec = try VMSpec.decode(json: Data(Self.minimalJSON.utf8))
        #expect(spec == Fixtures.minimal)
        #expect(spec.cpus.maxVCPUs == 1)
        #expect(spec.serial == ConsoleSpec(mode: .null))
        #expect(spec.console == ConsoleSpec(mode: .off))
        #expect(spec.rng.source == "/dev/urandom")
        #expect(spec.memory.thp && !spec.memory.hugepages)
    }

    @Test func fullSpecRoundTripsThroughJSON() throws {
        let json = try Fixtures.full.encodedJSON()
        #expect(try VMSpec.decode(json: json) == Fixtures.full)
        let text = String(decoding: json, as: UTF8.self)
        for key in ["\"boot_vcpus\"", "\"threads_per_core\"", "\"host_cpus\"", "\"hotplug_size\"", "\"rate_limit_groups\"",
                    "\"vhost_socket\"", "\"offload_csum\"", "\"one_time_burst\"", "\"kind\":\"vhost-user\""] {
            #expect(text.contains(key), "missing \(key)")
        }
    }

    @Test func everySnakeCaseKeyDecodes() throws {
        let json = #"""
        {"name": "a", "id": "b",
         "cpus": {"boot_vcpus": 2, "max_vcpus": 2, "kvm_hyperv": true,
                  "topology": {"threads_per_core": 1, "cores_per_die": 1, "dies_per_package": 1, "packages": 2},
                  "affinity": [{"vcpu": 1, "host_cpus": [3]}]},
         "memory": {"size": 1073741824, "hotplug_size": "1G", "hugepages": true, "hugepage_size": "2M",
                    "shared": false, "mergeable": true, "prefault": true, "thp": false},
         "payload": {"kernel": "/k", "initramfs": "/i", "cmdline": "c"},
         "disks": [{"id": "d", "path": "/p", "readonly": true, "direct": true, "vhost_user": false,
                    "num_queues": 1, "queue_size": 64, "pci_segment": 0, "serial": "s",
                    "rate_limiter": {"bandwidth": {"size": 1, "refill_time": 2, "one_time_burst": 3},
                                     "ops": {"size": 4, "refill_time": 5}}},
                   {"id": "e", "rate_limit_group": "g", "path": "/q"},
                   {"id": "f", "vhost_user": true, "vhost_socket": "/s"}],
         "nics": [{"id": "n", "kind": "macvtap", "parent": "eth0", "mode": "passthru", "mac": "52:54:00:00:00:01",
                   "host_mac": "52:54:00:00:00:02", "mtu": 1500, "num_queues": 2, "queue_size": 256,
                   "offload_tso": false, "offload_ufo": false, "offload_csum": false, "pci_segment": 1, "iommu": true,
                   "rate_limiter": {"ops": {"size": 1, "refill_time": 1}}},
                  {"id": "v", "kind": "vhost-user", "vhost_socket": "/v", "vhost_mode": "server"},
                  {"id": "t", "kind": "tap", "bridge": "br0"}],
         "serial": {"mode": "file", "path": "/log"}, "console": {"mode": "pty"},
         "rng": {"source": "/dev/random"}, "vsock": {"cid": 42, "socket": "/vs"},
         "rate_limit_groups": [{"id": "g", "rate_limiter": {"ops": {"size": 1, "refill_time": 1}}}]}
        """#
        let spec = try VMSpec.decode(json: Data(json.utf8))
        #expect(spec.cpus.affinity == [CPUAffinitySpec(vcpu: 1, hostCPUs: [3])])
        #expect(spec.memory.hugepageSize == .mebibytes(2) && !spec.memory.thp && spec.memory.prefault)
        #expect(spec.disks[0].rateLimiter?.bandwidth == TokenBucketSpec(size: 1, refillTime: 2, oneTimeBurst: 3))
        #expect(spec.nics[0].effectiveMode == .passthru && spec.nics[0].iommu && !spec.nics[0].offloadCsum)
        #expect(spec.nics[1].kind == .vhostUser && spec.nics[1].vhostMode == .server)
        #expect(spec.serial == ConsoleSpec(mode: .file, path: "/log") && spec.console.mode == .pty)
        #expect(spec.vsock == VsockSpec(cid: 42, socket: "/vs") && spec.rng.source == "/dev/random")
        #expect(try VMSpec.decode(json: spec.encodedJSON()) == spec)
    }

    /// Each case replaces one fragment of the minimal document.
    @Test(arguments: [
        (#""name": "tiny""#, #""name": "tiny", "nmae": "x""#, "nmae", "unknown key"),
        (#""boot_vcpus": 1"#, #""boot_vcpus": 1, "max_vcpu": 2"#, "cpus.max_vcpu", "unknown key"),
        (#""size": "256M""#, #""size": "256M", "huge_pages": true"#, "memory.huge_pages", "unknown key"),
        (#""kernel": "/var/lib/qarax/images/pvh.elf""#, #""kernal": "/k""#, "payload.kernal", "unknown key"),
        (#""size": "256M""#, #""size": "256MB""#, "memory.size", "decimal unit"),
        (#""size": "256M""#, #""size": -1"#, "memory.size", "negative"),
        (#""boot_vcpus": 1"#, #""boot_vcpus": "1""#, "cpus.boot_vcpus", "expected an integer"),
        (#""boot_vcpus": 1"#, #""boot_vcpus": null"#, "cpus.boot_vcpus", "found null"),
        (#""name": "tiny","#, "", "name", "is required"),
        (#""name": "tiny""#, #""name": "tiny", "nics": [{"id": "n", "kind": "tapp"}]"#, "nics[0].kind",
         "\"tapp\" is not one of: tap, macvtap, vhost-user"),
        (#""name": "tiny""#, #""name": "tiny", "nics": [{"id": "n", "kind": "tap", "mtux": 1}]"#, "nics[0].mtux", "unknown key"),
        (#""name": "tiny""#, #""name": "tiny", "nics": [{"id": "n"}]"#, "nics[0].kind", "is required"),
        (#""name": "tiny""#, #""name": "tiny", "serial": {"mode": "Tty"}"#, "serial.mode", "is not one of"),
        (#""name": "tiny""#, #""name": "tiny", "disks": [{"id": "d", "path": "/p"}, {"id": "e", "ratelimiter": {}}]"#,
         "disks[1].ratelimiter", "unknown key"),
        (#""name": "tiny""#, #""name": "tiny", "rate_limit_groups": [{"id": "g", "rate_limiter": {"ops": {"size": 1}}}]"#,
         "rate_limit_groups[0].rate_limiter.ops.refill_time", "is required"),
        (#""name": "tiny""#, #""name": "tiny", "vsock": {"cid": 3, "port": 1}"#, "vsock.port", "unknown key"),
        (#""name": "tiny""#, #""name": "tiny", "nics": [{"id": "n", "kind": "macvtap", "mode": "bridged"}]"#,
         "nics[0].mode", "\"bridged\" is not one of: bridge, vepa, private, passthru"),
    ])
    func decodingErrorsNameTheField(original: String, replacement: String, field: String, reason: String) throws {
        let json = Self.minimalJSON.replacingOccurrences(of: original, with: replacement)
        #expect(json != Self.minimalJSON)
        let error = try #require(throws: SpecDecodingError.self) { try VMSpec.decode(json: Data(json.utf8)) }
        #expect(error.field == field)
        #expect(error.reason.contains(reason), "\(error)")
    }

    @Test func malformedJSONIsReported() throws {
        let error = try #require(throws: SpecDecodingError.self) { try VMSpec.decode(json: Data("{\"name\":".utf8)) }
        #expect(error.field.isEmpty && error.reason.hasPrefix("not valid JSON"))
    }
}
