import Testing
import VMModel

/// One broken specification: what is changed from a valid fixture, and exactly the problems expected.
struct BadSpec: Sendable, CustomTestStringConvertible {
    let label: String
    let base: VMSpec
    let change: @Sendable (inout VMSpec) -> Void
    let expected: Set<String>

    init(_ label: String, base: VMSpec = Fixtures.full, _ expected: Set<String>, _ change: @escaping @Sendable (inout VMSpec) -> Void) {
        self.label = label
        self.base = base
        self.change = change
        self.expected = expected
    }

    var testDescription: String { label }

    var spec: VMSpec {
        var spec = base
        change(&spec)
        return spec
    }
}

@Suite struct VMSpecValidationTests {
    @Test func fixturesAreValid() {
        #expect(Fixtures.full.validate() == [])
        #expect(Fixtures.minimal.validate() == [])
    }

    @Test(arguments: [
        // Names and ids
        BadSpec("empty name", ["name: is empty"]) { $0.name = "" },
        BadSpec("name charset", [#"name: "web 1" has characters outside A-Z a-z 0-9 . _ -"#]) { $0.name = "web 1" },
        BadSpec("name start", [#"name: "-web" does not start with a letter or digit"#]) { $0.name = "-web" },
        BadSpec("name length", ["name: \"\(String(repeating: "a", count: 64))\" is longer than 63 characters"]) {
            $0.name = String(repeating: "a", count: 64)
        },
        BadSpec("id reserved prefix", [#"id: "__x" does not start with a letter or digit"#]) { $0.id = "__x" },
        BadSpec("id unicode", [#"id: "vé" has characters outside A-Z a-z 0-9 . _ -"#]) { $0.id = "vé" },
        // CPUs
        BadSpec("zero vcpus", ["cpus.boot_vcpus: 0 is below 1", "cpus.max_vcpus: 0 is below 1",
                               "cpus.topology: threads_per_core × cores_per_die × dies_per_package × packages is 4, not max_vcpus (0)"]) {
            $0.cpus.bootVCPUs = 0; $0.cpus.maxVCPUs = 0; $0.cpus.affinity = []
        },
        BadSpec("max below boot", ["cpus.max_vcpus: 4 is below boot_vcpus (6)"]) { $0.cpus.bootVCPUs = 6 },
        BadSpec("too many vcpus", ["cpus.boot_vcpus: 300 is above 254", "cpus.max_vcpus: 300 is above 254",
                                   "cpus.topology: threads_per_core × cores_per_die × dies_per_package × packages is 4, not max_vcpus (300)"]) {
            $0.cpus.bootVCPUs = 300; $0.cpus.maxVCPUs = 300
        },
        BadSpec("topology product", ["cpus.topology: threads_per_core × cores_per_die × dies_per_package × packages is 6, not max_vcpus (4)"]) {
            $0.cpus.topology = CPUTopologySpec(threadsPerCore: 1, coresPerDie: 3, diesPerPackage: 1, packages: 2)
        },
        BadSpec("topology parts", ["cpus.topology.cores_per_die: 0 is below 1", "cpus.topology.threads_per_core: 4 is above 2"]) {
            $0.cpus.topology = CPUTopologySpec(threadsPerCore: 4, coresPerDie: 0, diesPerPackage: 1, packages: 1)
        },
        BadSpec("topology overflow", ["cpus.topology: threads_per_core × cores_per_die × dies_per_package × packages is more than 9223372036854775807, not max_vcpus (4)"]) {
            $0.cpus.topology = CPUTopologySpec(threadsPerCore: 1, coresPerDie: Int.max, diesPerPackage: 2, packages: 1)
        },
        BadSpec("affinity", ["cpus.affinity[1].vcpu: 4 is not below max_vcpus (4)", "cpus.affinity[2].vcpu: vCPU 0 is already pinned by cpus.affinity[0]",
                             "cpus.affinity[2].host_cpus: is empty", "cpus.affinity[3].vcpu: -1 is negative", "cpus.affinity[3].host_cpus[1]: -2 is negative"]) {
            $0.cpus.affinity += [CPUAffinitySpec(vcpu: 4, hostCPUs: [1]), CPUAffinitySpec(vcpu: 0, hostCPUs: []),
                                 CPUAffinitySpec(vcpu: -1, hostCPUs: [0, -2])]
        },
        // Memory
        BadSpec("memory alignment", ["memory.size: 1073741825 bytes is not a multiple of 2 MiB",
                                     "memory.hotplug_size: 3145728 bytes is not a multiple of 2 MiB"]) {
            $0.memory.size = ByteSize(bytes: (1 << 30) + 1); $0.memory.hotplugSize = .mebibytes(3)
        },
        BadSpec("memory tiny", ["memory.size: 1 MiB is below 2 MiB", "memory.hotplug_size: is zero (omit it for no hotplug)"]) {
            $0.memory.size = .mebibytes(1); $0.memory.hotplugSize = ByteSize(bytes: 0)
        },
        BadSpec("hugepage size without hugepages", ["memory.hugepage_size: only with memory.hugepages"]) {
            $0.memory.hugepageSize = .mebibytes(2)
        },
        BadSpec("hugepage size odd", ["memory.hugepage_size: 4 MiB is not 2 MiB or 1 GiB"]) {
            $0.memory.hugepages = true; $0.memory.hugepageSize = .mebibytes(4)
        },
        BadSpec("1G pages need 1G multiples", ["memory.size: 1536 MiB is not a multiple of the 1 GiB hugepage size",
                                               "memory.hotplug_size: 512 MiB is not a multiple of the 1 GiB hugepage size"]) {
            $0.memory.hugepages = true; $0.memory.hugepageSize = .gibibytes(1)
            $0.memory.size = .mebibytes(1536); $0.memory.hotplugSize = .mebibytes(512)
        },
        BadSpec("shared and mergeable", ["memory.mergeable: not allowed with memory.shared"]) { $0.memory.mergeable = true },
        // Payload
        BadSpec("no boot item", ["payload: needs a kernel or a firmware", "payload.initramfs: only with payload.kernel",
                                 "payload.cmdline: only with payload.kernel"]) { $0.payload.kernel = nil },
        BadSpec("kernel and firmware", ["payload.firmware: not together with payload.kernel"]) {
            $0.payload.firmware = "/var/lib/qarax/images/fw.bin"
        },
        BadSpec("relative and dotdot paths", [#"payload.kernel: "vmlinux" is not an absolute path"#,
                                              #"payload.initramfs: "/var/lib/qarax/images/../../../etc/shadow" has a ".." component"#]) {
            $0.payload.kernel = "vmlinux"; $0.payload.initramfs = "/var/lib/qarax/images/../../../etc/shadow"
        },
        BadSpec("cmdline", ["payload.cmdline: 3000 bytes is above 2047"]) { $0.payload.cmdline = String(repeating: "x", count: 3000) },
        BadSpec("firmware only is fine but initramfs needs kernel", ["payload.initramfs: only with payload.kernel"]) {
            $0.payload = PayloadSpec(initramfs: "/i", firmware: "/var/lib/qarax/images/hypervisor-fw")
        },
        // Disks
        BadSpec("duplicate ids across devices", [#"disks[1].id: "root" is already used by disks[0]"#,
                                                 #"nics[0].id: "io" is already used by rate_limit_groups[0]"#]) {
            $0.disks[1].id = "root"; $0.nics[0].id = "io"
        },
        BadSpec("disk path missing and socket without vhost", ["disks[0].path: is required", "disks[0].vhost_socket: only with vhost_user"]) {
            $0.disks[0].path = nil; $0.disks[0].vhostSocket = "/s"
        },
        BadSpec("vhost-user disk", ["disks[3].vhost_socket: required with vhost_user", "disks[3].path: not allowed with vhost_user",
                                    "disks[3].rate_limiter: not supported with vhost_user", "disks[3].rate_limit_group: not supported with vhost_user",
                                    "disks[3].rate_limit_group: not together with rate_limiter",
                                    "disks[3].vhost_user: needs shared guest memory (memory.shared or memory.hugepages)",
                                    "nics[2].kind: vhost-user needs shared guest memory (memory.shared or memory.hugepages)"]) {
            $0.memory.shared = false
            $0.disks[3].vhostSocket = nil; $0.disks[3].path = "/var/lib/qarax/disks/x.img"
            $0.disks[3].rateLimiter = RateLimiterSpec(ops: TokenBucketSpec(size: 1, refillTime: 1)); $0.disks[3].rateLimitGroup = "io"
        },
        BadSpec("hugepages count as shared memory", []) {
            $0.memory.shared = false; $0.memory.hugepages = true
        },
        BadSpec("disk queues", ["disks[0].num_queues: 0 is below 1", "disks[0].queue_size: 100 is not a power of two",
                                "disks[1].num_queues: 3 is above cpus.boot_vcpus (2)", "disks[1].queue_size: 2 is below 4",
                                "disks[2].queue_size: 65536 is above 32768"]) {
            $0.disks[0].numQueues = 0; $0.disks[0].queueSize = 100
            $0.disks[1].numQueues = 3; $0.disks[1].queueSize = 2; $0.disks[2].queueSize = 65536
        },
        BadSpec("rate limit groups", [#"disks[0].rate_limit_group: "nope" is not an id in rate_limit_groups"#,
                                      "disks[2].rate_limit_group: not together with rate_limiter"]) {
            $0.disks[0].rateLimitGroup = "nope"; $0.disks[2].rateLimitGroup = "io"
        },
        BadSpec("token buckets", ["disks[2].rate_limiter: needs bandwidth or ops", "rate_limit_groups[0].rate_limiter.bandwidth.size: 0 is below 1",
                                  "rate_limit_groups[0].rate_limiter.bandwidth.refill_time: 0 is below 1",
                                  "rate_limit_groups[0].rate_limiter.bandwidth.one_time_burst: -1 is negative",
                                  #"rate_limit_groups[1].id: "io" is already used by rate_limit_groups[0]"#]) {
            $0.disks[2].rateLimiter = RateLimiterSpec()
            $0.rateLimitGroups[0].rateLimiter.bandwidth = TokenBucketSpec(size: 0, refillTime: 0, oneTimeBurst: -1)
            $0.rateLimitGroups.append(RateLimitGroupSpec(id: "io", rateLimiter: RateLimiterSpec(ops: TokenBucketSpec(size: 1, refillTime: 1))))
        },
        BadSpec("pci segment and serial", ["disks[0].pci_segment: 96 is above 95", "disks[1].pci_segment: -1 is negative",
                                           "disks[0].serial: 21 bytes is above 20"]) {
            $0.disks[0].pciSegment = 96; $0.disks[1].pciSegment = -1; $0.disks[0].serial = String(repeating: "s", count: 21)
        },
        // NICs
        BadSpec("mtu range", ["nics[1].mtu: 70000 is above 65535", "nics[0].mtu: 67 is below 68"]) {
            $0.nics[1].mtu = 70000; $0.nics[0].mtu = 67
        },
        BadSpec("vhost-user mtu minimum", ["nics[2].mtu: 1000 is below 1280, cloud-hypervisor's minimum for vhost-user"]) {
            $0.nics[2].mtu = 1000
        },
        BadSpec("mac syntax", [#"nics[0].mac: "52:54:00:12:34" is not a MAC address (six hex pairs separated by colons)"#,
                               #"nics[0].host_mac: "zz:54:00:12:34:57" is not a MAC address (six hex pairs separated by colons)"#]) {
            $0.nics[0].mac = "52:54:00:12:34"; $0.nics[0].hostMAC = "zz:54:00:12:34:57"
        },
        BadSpec("mac classes", ["nics[0].mac: 01:00:5e:00:00:01 is a multicast address", "nics[0].host_mac: 00:00:00:00:00:00 is the all-zero address",
                                "nics[1].mac: ff:ff:ff:ff:ff:ff is a multicast address"]) {
            $0.nics[0].mac = "01:00:5E:00:00:01"; $0.nics[0].hostMAC = "00:00:00:00:00:00"; $0.nics[1].mac = "ff:ff:ff:ff:ff:ff"
        },
        BadSpec("duplicate macs", ["nics[2].mac: 52:54:00:12:34:56 is already used by nics[0]", "nics[1].host_mac: 52:54:00:aa:aa:aa is the same as mac"]) {
            $0.nics[2].mac = "52:54:00:12:34:56"; $0.nics[1].mac = "52:54:00:aa:aa:aa"; $0.nics[1].hostMAC = "52:54:00:AA:AA:AA"
        },
        BadSpec("nic queues", ["nics[0].num_queues: 1 is below 2 (one RX and one TX queue)", "nics[1].num_queues: 3 is odd (queues come in RX/TX pairs)",
                               "nics[2].num_queues: 6 is 3 queue pairs, above cpus.boot_vcpus (2)", "nics[0].queue_size: 1000 is not a power of two",
                               "nics[1].queue_size: 65536 is above 32768"]) {
            $0.nics[0].numQueues = 1; $0.nics[1].numQueues = 3; $0.nics[2].numQueues = 6
            $0.nics[0].queueSize = 1000; $0.nics[1].queueSize = 65536
        },
        BadSpec("offloads need csum", ["nics[0].offload_tso: needs offload_csum", "nics[0].offload_ufo: needs offload_csum"]) {
            $0.nics[0].offloadCsum = false
        },
        BadSpec("offloads all off is fine", []) {
            $0.nics[0].offloadCsum = false; $0.nics[0].offloadTSO = false; $0.nics[0].offloadUFO = false
        },
        BadSpec("tap with other kinds' fields", ["nics[0].parent: only for kind macvtap", "nics[0].mode: only for kind macvtap",
                                                 "nics[0].vhost_socket: only for kind vhost-user", "nics[0].vhost_mode: only for kind vhost-user"]) {
            $0.nics[0].parent = "eth0"; $0.nics[0].mode = .bridge; $0.nics[0].vhostSocket = "/s"; $0.nics[0].vhostMode = .client
        },
        BadSpec("macvtap without parent, with bridge", ["nics[1].parent: required for kind macvtap", "nics[1].bridge: only for kind tap"]) {
            $0.nics[1].parent = nil; $0.nics[1].bridge = "br0"
        },
        BadSpec("vhost-user with host fields", ["nics[2].vhost_socket: required for kind vhost-user", "nics[2].bridge: only for kind tap",
                                                "nics[2].host_mac: not for kind vhost-user (the backend owns the host side)",
                                                "nics[2].rate_limiter: not supported for kind vhost-user", "nics[2].iommu: not supported for kind vhost-user",
                                                "nics[2].mode: only for kind macvtap"]) {
            $0.nics[2].vhostSocket = nil; $0.nics[2].bridge = "br0"; $0.nics[2].hostMAC = "52:54:00:00:00:09"
            $0.nics[2].rateLimiter = RateLimiterSpec(ops: TokenBucketSpec(size: 1, refillTime: 1)); $0.nics[2].iommu = true
            $0.nics[2].mode = .vepa
        },
        BadSpec("interface names", [#"nics[0].bridge: "a-very-long-bridge" is not an interface name (1-15 bytes, no '/', ':' or whitespace)"#,
                                    #"nics[1].parent: "eth0/1" is not an interface name (1-15 bytes, no '/', ':' or whitespace)"#]) {
            $0.nics[0].bridge = "a-very-long-bridge"; $0.nics[1].parent = "eth0/1"
        },
        BadSpec("passthru takes the parent", [#"nics[3].parent: "eth0" is taken in passthru mode by nics[1]"#,
                                              #"nics[4].mode: passthru needs "eth1" to itself, but nics[2] uses it"#]) {
            $0.nics[1].mode = .passthru
            $0.nics[2] = NICSpec(id: "net2", kind: .macvtap, parent: "eth1")
            $0.nics.append(NICSpec(id: "net3", kind: .macvtap, parent: "eth0"))
            $0.nics.append(NICSpec(id: "net4", kind: .macvtap, parent: "eth1", mode: .passthru))
        },
        BadSpec("nic pci segment", ["nics[0].pci_segment: 100 is above 95"]) { $0.nics[0].pciSegment = 100 },
        // Serial, console, rng, vsock
        BadSpec("console paths", ["serial.path: required for mode socket", "console.path: only for modes file and socket"]) {
            $0.serial = ConsoleSpec(mode: .socket); $0.console = ConsoleSpec(mode: .tty, path: "/x")
        },
        BadSpec("console socket unsupported", ["console.mode: socket is only supported for the serial port",
                                               #"console.path: "relative.sock" is not an absolute path"#]) {
            $0.console = ConsoleSpec(mode: .socket, path: "relative.sock")
        },
        BadSpec("console file", ["console.path: required for mode file"]) { $0.console = ConsoleSpec(mode: .file) },
        BadSpec("rng source", [#"rng.source: "/etc/passwd" is not one of /dev/hwrng, /dev/random, /dev/urandom"#]) {
            $0.rng = RNGSpec(source: "/etc/passwd")
        },
        BadSpec("vsock reserved cid", ["vsock.cid: 2 is below 3", "vsock.socket: is empty"]) { $0.vsock = VsockSpec(cid: 2, socket: "") },
        BadSpec("vsock any cid", ["vsock.cid: 4294967295 is above 4294967294"]) { $0.vsock = VsockSpec(cid: 4_294_967_295) },
    ])
    func reportsExactlyTheExpectedProblems(_ bad: BadSpec) {
        let problems = bad.spec.validate()
        #expect(Set(problems.map(\.description)) == bad.expected)
        #expect(problems.count == bad.expected.count, "a problem was reported twice: \(problems)")
    }

    @Test func reportsEveryProblemAtOnce() {
        var spec = Fixtures.full
        spec.name = ""
        spec.cpus.bootVCPUs = 0
        spec.memory.size = ByteSize(bytes: 3)
        spec.nics[1].mtu = 70000
        spec.vsock = VsockSpec(cid: 1)
        let fields = spec.validate().map(\.field)
        for field in ["name", "cpus.boot_vcpus", "memory.size", "nics[1].mtu", "vsock.cid"] {
            #expect(fields.contains(field), "\(field) missing from \(fields)")
        }
        #expect(spec.validate().contains(SpecProblem(field: "nics[1].mtu", reason: "70000 is above 65535")))
    }
}
