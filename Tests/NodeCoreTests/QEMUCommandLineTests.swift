import Foundation
import NodeCore
import Testing
import VMModel

/// Specifications whose QEMU command lines are pinned below.
enum QEMUGoldenSpecs {
    static let kernel = "/var/lib/qarax/images/vmlinux"

    static var minimal: VMSpec {
        VMSpec(name: "minimal", cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(64)),
               payload: PayloadSpec(kernel: kernel, cmdline: "console=ttyS0"), serial: ConsoleSpec(mode: .tty))
    }

    static var tapNICs: VMSpec {
        var spec = VMSpec(name: "tap-nics", cpus: CPUSpec(bootVCPUs: 2), memory: MemorySpec(size: .mebibytes(512)),
                          payload: PayloadSpec(kernel: kernel, initramfs: "/var/lib/qarax/images/initramfs.img",
                                               cmdline: "console=ttyS0 qarax.ip=10.0.0.2/24"),
                          serial: ConsoleSpec(mode: .tty))
        spec.nics = [
            NICSpec(id: "eth0", kind: .tap, bridge: "br0", mac: "52:54:00:00:00:01", mtu: 9000),
            NICSpec(id: "eth1", kind: .macvtap, parent: "veth0", numQueues: 4, offloadTSO: false, offloadUFO: false),
        ]
        return spec
    }

    static let tapHostNICs: [String: QEMUHostNIC] = [
        "eth0": QEMUHostNIC(fds: [5], mac: MACAddress("52:54:00:00:00:01") ?? MACAddress(octets: [2, 0, 0, 0, 0, 1])),
        "eth1": QEMUHostNIC(fds: [6, 7], mac: MACAddress(octets: [0x02, 0x51, 0x72, 0, 0, 2])),
    ]

    static var hugepages: VMSpec {
        var spec = VMSpec(name: "hugepages", cpus: CPUSpec(bootVCPUs: 2),
                          memory: MemorySpec(size: .gibibytes(2), hugepages: true, hugepageSize: .gibibytes(1), prefault: true),
                          payload: PayloadSpec(kernel: kernel), serial: ConsoleSpec(mode: .file, path: "/run/qarax/vm/serial,0.log"))
        spec.disks = [
            DiskSpec(id: "root", path: "/var/lib/qarax/disks/root.raw", direct: true, numQueues: 2, queueSize: 256,
                     rateLimitGroup: "slow", serial: "QX-ROOT"),
            DiskSpec(id: "data", path: "/var/lib/qarax/disks/data.raw", readonly: true,
                     rateLimiter: RateLimiterSpec(bandwidth: TokenBucketSpec(size: 10_485_760, refillTime: 100))),
        ]
        spec.rateLimitGroups = [RateLimitGroupSpec(id: "slow", rateLimiter: RateLimiterSpec(
            bandwidth: TokenBucketSpec(size: 1_048_576, refillTime: 1000), ops: TokenBucketSpec(size: 100, refillTime: 500)))]
        spec.rng = RNGSpec(source: "/dev/random")
        return spec
    }

    static var q35Hotplug: VMSpec {
        var spec = VMSpec(name: "q35-hotplug",
                          cpus: CPUSpec(bootVCPUs: 2, maxVCPUs: 8,
                                        topology: CPUTopologySpec(threadsPerCore: 2, coresPerDie: 2, diesPerPackage: 1, packages: 2)),
                          memory: MemorySpec(size: .gibibytes(1), hotplugSize: .gibibytes(3), mergeable: true),
                          payload: PayloadSpec(kernel: kernel, cmdline: "console=hvc0"),
                          serial: ConsoleSpec(mode: .off), console: ConsoleSpec(mode: .tty))
        spec.nics = [NICSpec(id: "eth0", kind: .tap, numQueues: 4)]
        return spec
    }

    static var vhostUser: VMSpec {
        var spec = VMSpec(name: "vhost-user", cpus: CPUSpec(bootVCPUs: 2), memory: MemorySpec(size: .mebibytes(1024), shared: true),
                          payload: PayloadSpec(kernel: kernel), serial: ConsoleSpec(mode: .socket, path: "/run/qarax/vm/serial.sock"))
        spec.disks = [DiskSpec(id: "vub0", vhostUser: true, vhostSocket: "/run/spdk/vub0.sock", numQueues: 2)]
        spec.nics = [
            NICSpec(id: "vu0", kind: .vhostUser, mac: "52:54:00:00:00:10", mtu: 1500, queueSize: 1024,
                    vhostSocket: "/run/ovs/vu0.sock"),
            NICSpec(id: "vu1", kind: .vhostUser, numQueues: 4, vhostSocket: "/run/ovs/vu1.sock", vhostMode: .server),
        ]
        return spec
    }
}

/// The expected argv of each golden specification (arguments after the binary).
enum QEMUGoldenArgv {
    static let minimal: [String] = [
        "-name", "guest=minimal,debug-threads=on",
        "-no-user-config",
        "-nodefaults",
        "-nographic",
        "-M", "microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on,mem-merge=off",
        "-enable-kvm",
        "-cpu", "host,-arch-capabilities",
        "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-smp", "1,maxcpus=1",
        "-m", "size=64M",
        "-kernel", "/var/lib/qarax/images/vmlinux",
        "-append", "console=ttyS0",
        "-chardev", "socket,id=qmp,fd=3,server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", "file,id=serial0,path=/proc/self/fd/4",
        "-serial", "chardev:serial0",
        "-object", "rng-random,id=rng0,filename=/dev/urandom",
        "-device", "virtio-rng-device,rng=rng0,id=rng",
    ]

    static let tapNICs: [String] = [
        "-name", "guest=tap-nics,debug-threads=on",
        "-no-user-config",
        "-nodefaults",
        "-nographic",
        "-M", "microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on,mem-merge=off",
        "-enable-kvm",
        "-cpu", "host,-arch-capabilities",
        "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-smp", "2,maxcpus=2",
        "-m", "size=512M",
        "-kernel", "/var/lib/qarax/images/vmlinux",
        "-initrd", "/var/lib/qarax/images/initramfs.img",
        "-append", "console=ttyS0 qarax.ip=10.0.0.2/24",
        "-chardev", "socket,id=qmp,fd=3,server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", "file,id=serial0,path=/proc/self/fd/4",
        "-serial", "chardev:serial0",
        "-object", "rng-random,id=rng0,filename=/dev/urandom",
        "-device", "virtio-rng-device,rng=rng0,id=rng",
        "-netdev", "tap,id=net-eth0,fd=5,vhost=off",
        "-device", "virtio-net-device,netdev=net-eth0,id=eth0,mac=52:54:00:00:00:01,host_mtu=9000",
        "-netdev", "tap,id=net-eth1,fds=6:7,vhost=off",
        "-device", "virtio-net-device,netdev=net-eth1,id=eth1,mac=02:51:72:00:00:02,mq=on,guest_tso4=off,guest_tso6=off,host_tso4=off,host_tso6=off,guest_ufo=off,host_ufo=off",
    ]

    static let hugepages: [String] = [
        "-name", "guest=hugepages,debug-threads=on",
        "-no-user-config",
        "-nodefaults",
        "-nographic",
        "-M", "microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on,mem-merge=off,memory-backend=mem0",
        "-enable-kvm",
        "-cpu", "host,-arch-capabilities",
        "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-smp", "2,maxcpus=2",
        "-m", "size=2048M",
        "-object", "memory-backend-memfd,id=mem0,size=2048M,hugetlb=on,hugetlbsize=1024M,share=off,prealloc=on",
        "-kernel", "/var/lib/qarax/images/vmlinux",
        "-chardev", "socket,id=qmp,fd=3,server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", "file,id=serial0,path=/run/qarax/vm/serial,,0.log",
        "-serial", "chardev:serial0",
        "-object", "rng-random,id=rng0,filename=/dev/random",
        "-device", "virtio-rng-device,rng=rng0,id=rng",
        "-object", "throttle-group,id=tg-slow,x-bps-total=1048576,x-iops-total=200",
        "-blockdev", "driver=file,node-name=file-root,filename=/var/lib/qarax/disks/root.raw,read-only=off,cache.direct=on,aio=native",
        "-blockdev", "driver=raw,node-name=fmt-root,file=file-root,read-only=off",
        "-blockdev", "driver=throttle,node-name=thr-root,throttle-group=tg-slow,file=fmt-root,read-only=off",
        "-device", "virtio-blk-device,drive=thr-root,id=root,num-queues=2,queue-size=256,serial=QX-ROOT",
        "-blockdev", "driver=file,node-name=file-data,filename=/var/lib/qarax/disks/data.raw,read-only=on,cache.direct=off,aio=threads",
        "-blockdev", "driver=raw,node-name=fmt-data,file=file-data,read-only=on",
        "-object", "throttle-group,id=tg-disk-data,x-bps-total=104857600",
        "-blockdev", "driver=throttle,node-name=thr-data,throttle-group=tg-disk-data,file=fmt-data,read-only=on",
        "-device", "virtio-blk-device,drive=thr-data,id=data,num-queues=1,queue-size=128",
    ]

    static let q35Hotplug: [String] = [
        "-name", "guest=q35-hotplug,debug-threads=on",
        "-no-user-config",
        "-nodefaults",
        "-nographic",
        "-M", "q35,vmport=off,sata=off,smbus=off,mem-merge=on",
        "-enable-kvm",
        "-cpu", "host,-arch-capabilities",
        "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-smp", "2,maxcpus=8,sockets=2,dies=1,cores=2,threads=2",
        "-m", "size=1024M,slots=8,maxmem=4096M",
        "-kernel", "/var/lib/qarax/images/vmlinux",
        "-append", "console=hvc0",
        "-chardev", "socket,id=qmp,fd=3,server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", "stdio,id=console0,signal=off",
        "-device", "virtio-serial-pci,id=vser0",
        "-device", "virtconsole,chardev=console0,bus=vser0.0,id=console",
        "-object", "rng-random,id=rng0,filename=/dev/urandom",
        "-device", "virtio-rng-pci,rng=rng0,id=rng",
        "-netdev", "tap,id=net-eth0,fds=5:6,vhost=off",
        "-device", "virtio-net-pci,netdev=net-eth0,id=eth0,mac=02:00:00:00:00:09,romfile=,mq=on,vectors=6",
        "-device", "pcie-root-port,id=hp0,bus=pcie.0,chassis=1",
        "-device", "pcie-root-port,id=hp1,bus=pcie.0,chassis=2",
    ]

    static let vhostUser: [String] = [
        "-name", "guest=vhost-user,debug-threads=on",
        "-no-user-config",
        "-nodefaults",
        "-nographic",
        "-M", "microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on,mem-merge=off,memory-backend=mem0",
        "-enable-kvm",
        "-cpu", "host,-arch-capabilities",
        "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-smp", "2,maxcpus=2",
        "-m", "size=1024M",
        "-object", "memory-backend-memfd,id=mem0,size=1024M,share=on,prealloc=off",
        "-kernel", "/var/lib/qarax/images/vmlinux",
        "-chardev", "socket,id=qmp,fd=3,server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-chardev", "socket,id=serial0,path=/run/qarax/vm/serial.sock,server=on,wait=off",
        "-serial", "chardev:serial0",
        "-object", "rng-random,id=rng0,filename=/dev/urandom",
        "-device", "virtio-rng-device,rng=rng0,id=rng",
        "-chardev", "socket,id=chr-vub0,path=/run/spdk/vub0.sock",
        "-device", "vhost-user-blk,chardev=chr-vub0,id=vub0,num-queues=2,queue-size=128",
        "-chardev", "socket,id=chr-vu0,path=/run/ovs/vu0.sock",
        "-netdev", "vhost-user,id=net-vu0,chardev=chr-vu0,queues=1",
        "-device", "virtio-net-device,netdev=net-vu0,id=vu0,mac=52:54:00:00:00:10,host_mtu=1500,rx_queue_size=1024,tx_queue_size=1024",
        "-chardev", "socket,id=chr-vu1,path=/run/ovs/vu1.sock,server=on,wait=off",
        "-netdev", "vhost-user,id=net-vu1,chardev=chr-vu1,queues=2",
        "-device", "virtio-net-device,netdev=net-vu1,id=vu1,mq=on,rx_queue_size=256,tx_queue_size=256",
    ]
}

@Suite struct QEMUCommandLineTests {
    static let goldenCases: [(name: String, spec: VMSpec, configuration: QEMULaunchConfiguration,
                              machine: QEMUMachine, expected: [String])] = [
        ("microvm minimal", QEMUGoldenSpecs.minimal,
         QEMULaunchConfiguration(qmpListenerFD: 3, console: .inheritedFD(4)), .microvm, QEMUGoldenArgv.minimal),
        ("tap and macvtap fds", QEMUGoldenSpecs.tapNICs,
         QEMULaunchConfiguration(qmpListenerFD: 3, console: .inheritedFD(4), nics: QEMUGoldenSpecs.tapHostNICs),
         .microvm, QEMUGoldenArgv.tapNICs),
        ("hugepages, disks, throttling", QEMUGoldenSpecs.hugepages, QEMULaunchConfiguration(qmpListenerFD: 3),
         .microvm, QEMUGoldenArgv.hugepages),
        ("q35 with hotplug", QEMUGoldenSpecs.q35Hotplug,
         QEMULaunchConfiguration(qmpListenerFD: 3, console: .stdout,
                                 nics: ["eth0": QEMUHostNIC(fds: [5, 6], mac: MACAddress(octets: [2, 0, 0, 0, 0, 9]))],
                                 pciHotplug: true, hotplugPorts: 2),
         .q35, QEMUGoldenArgv.q35Hotplug),
        ("vhost-user net and blk", QEMUGoldenSpecs.vhostUser, QEMULaunchConfiguration(qmpListenerFD: 3),
         .microvm, QEMUGoldenArgv.vhostUser),
    ]

    @Test(arguments: 0..<goldenCases.count)
    func goldenArgv(_ index: Int) throws {
        let golden = Self.goldenCases[index]
        let line = try QEMUCommandLine.build(for: golden.spec, configuration: golden.configuration)
        #expect(line.machine == golden.machine, "\(golden.name)")
        #expect(line.arguments == golden.expected, "\(golden.name)")
        if line.arguments != golden.expected {
            for (position, (got, want)) in zip(line.arguments, golden.expected).enumerated() where got != want {
                Issue.record("\(golden.name): argument \(position) is \(got.debugDescription), expected \(want.debugDescription)")
                break
            }
        }
        #expect(line.argv(binary: "/usr/bin/qemu-system-x86_64") == ["/usr/bin/qemu-system-x86_64"] + golden.expected)
    }

    @Test func hotplugNeedsPickQ35UnlessAMachineIsGiven() {
        var spec = QEMUGoldenSpecs.minimal
        let plain = QEMULaunchConfiguration(qmpListenerFD: 3)
        #expect(QEMUCommandLine.machine(for: spec, configuration: plain) == .microvm)
        #expect(QEMUCommandLine.machine(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3, pciHotplug: true)) == .q35)
        spec.cpus = CPUSpec(bootVCPUs: 1, maxVCPUs: 2)
        #expect(QEMUCommandLine.machine(for: spec, configuration: plain) == .q35)
        spec.cpus = CPUSpec(bootVCPUs: 1)
        spec.memory.hotplugSize = .mebibytes(512)
        #expect(QEMUCommandLine.machine(for: spec, configuration: plain) == .q35)
        #expect(QEMUCommandLine.machine(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3, machine: .microvm)) == .microvm)
    }

    @Test func noRebootIsNeverPassedSoQMPResetKeepsTheVM() throws {
        for golden in Self.goldenCases {
            let line = try QEMUCommandLine.build(for: golden.spec, configuration: golden.configuration)
            #expect(!line.arguments.contains("-no-reboot"))
            #expect(!line.arguments.contains("-no-shutdown"))
            #expect(!line.arguments.contains("-daemonize"))
        }
    }

    @Test func debugExitAddsTheISADevice() throws {
        let line = try QEMUCommandLine.build(for: QEMUGoldenSpecs.minimal,
                                             configuration: QEMULaunchConfiguration(qmpListenerFD: 3, debugExit: true))
        #expect(Array(line.arguments.suffix(2)) == ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    }

    @Test func serialOffDropsTheISASerialPort() throws {
        var spec = QEMUGoldenSpecs.minimal
        spec.serial = ConsoleSpec(mode: .off)
        let line = try QEMUCommandLine.build(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3))
        #expect(line.arguments.contains("microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=off,mem-merge=off"))
        #expect(!line.arguments.contains("-serial"))
    }

    @Test(arguments: [
        (ConsoleSpec(mode: .null), "null,id=serial0"),
        (ConsoleSpec(mode: .pty), "pty,id=serial0"),
        (ConsoleSpec(mode: .tty), "stdio,id=serial0,signal=off"),
        (ConsoleSpec(mode: .file, path: "/var/log/vm,1.log"), "file,id=serial0,path=/var/log/vm,,1.log"),
        (ConsoleSpec(mode: .socket, path: "/run/vm.sock"), "socket,id=serial0,path=/run/vm.sock,server=on,wait=off"),
    ])
    func serialModes(_ serial: ConsoleSpec, _ chardev: String) throws {
        var spec = QEMUGoldenSpecs.minimal
        spec.serial = serial
        let line = try QEMUCommandLine.build(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3))
        let index = try #require(line.arguments.firstIndex(of: "chardev:serial0"))
        #expect(line.arguments[index - 2] == chardev)
    }
}

/// What the qemu backend refuses, and how the refusal reads.
@Suite struct QEMUValidationTests {
    private func problems(_ spec: VMSpec, machine: QEMUMachine = .microvm) -> [String] {
        QEMUCommandLine.validate(spec, machine: machine).map(\.description)
    }

    @Test func hypervEnlightenmentsAreRefusedNamingFieldAndBackend() {
        var spec = QEMUGoldenSpecs.minimal
        spec.cpus.kvmHyperV = true
        #expect(problems(spec) == ["cpus.kvm_hyperv: not supported by the qemu backend"])
    }

    @Test func everyProblemIsCollectedSpecProblemsFirst() {
        var spec = QEMUGoldenSpecs.minimal
        spec.memory.size = ByteSize(bytes: 3 << 20)
        spec.cpus.kvmHyperV = true
        spec.cpus.affinity = [CPUAffinitySpec(vcpu: 0, hostCPUs: [1])]
        spec.memory.thp = false
        spec.vsock = VsockSpec(cid: 3)
        spec.nics = [NICSpec(id: "eth0", kind: .tap, queueSize: 512, rateLimiter: RateLimiterSpec(ops: TokenBucketSpec(size: 10, refillTime: 10)),
                             pciSegment: 1, iommu: true)]
        spec.disks = [DiskSpec(id: "d0", path: "/d.raw", queueSize: 4096, rateLimiter: RateLimiterSpec(
            bandwidth: TokenBucketSpec(size: 1, refillTime: 2000, oneTimeBurst: 5)))]
        #expect(problems(spec) == [
            "memory.size: 3145728 bytes is not a multiple of 2 MiB",
            "cpus.kvm_hyperv: not supported by the qemu backend",
            "cpus.affinity: not supported by the qemu backend (QEMU has no vCPU pinning option)",
            "memory.thp: not supported by the qemu backend (QEMU always advises transparent huge pages for guest RAM)",
            "vsock: not supported by the qemu backend (QEMU's vsock is vhost-vsock to the host's AF_VSOCK, not a Unix socket proxy)",
            "disks[0].queue_size: not supported by the qemu backend (4096 is above QEMU's virtqueue maximum 1024)",
            "disks[0].rate_limiter.bandwidth.one_time_burst: not supported by the qemu backend (QEMU's throttling has recurring bursts only)",
            "disks[0].rate_limiter.bandwidth.size: not supported by the qemu backend (1 per 2000 ms is below 1 per second, QEMU's smallest limit)",
            "nics[0].pci_segment: not supported by the qemu backend (QEMU has PCI segment 0 only)",
            "nics[0].rate_limiter: not supported by the qemu backend (QEMU has no network rate limiter)",
            "nics[0].iommu: not supported by the qemu backend",
            "nics[0].queue_size: not supported by the qemu backend (512: QEMU fixes the TX queue of a tap NIC at 256)",
        ])
    }

    @Test func hotplugOnMicrovmIsRefusedButFineOnQ35() {
        var spec = QEMUGoldenSpecs.minimal
        spec.cpus = CPUSpec(bootVCPUs: 1, maxVCPUs: 4,
                            topology: CPUTopologySpec(threadsPerCore: 1, coresPerDie: 2, diesPerPackage: 2, packages: 1))
        spec.memory.hotplugSize = .gibibytes(1)
        #expect(problems(spec, machine: .microvm) == [
            "cpus.max_vcpus: not supported by the qemu backend (CPU hotplug needs the q35 machine; this VM runs on microvm)",
            "cpus.topology.dies_per_package: not supported by the qemu backend (more than one die per package needs the q35 machine; this VM runs on microvm)",
            "memory.hotplug_size: not supported by the qemu backend (memory hotplug needs the q35 machine; this VM runs on microvm)",
        ])
        #expect(problems(spec, machine: .q35).isEmpty)
    }

    @Test func thpIsIrrelevantWithHugepages() {
        var spec = QEMUGoldenSpecs.minimal
        spec.memory = MemorySpec(size: .mebibytes(64), hugepages: true, thp: false)
        #expect(problems(spec).isEmpty)
    }

    @Test func vhostUserDiskKnobsTheBackendOwns() {
        var spec = QEMUGoldenSpecs.vhostUser
        spec.disks[0].readonly = true
        spec.disks[0].serial = "S1"
        spec.nics[0].queueSize = 128
        #expect(problems(spec) == [
            "disks[0].readonly: not supported by the qemu backend (the vhost-user backend decides)",
            "disks[0].serial: not supported by the qemu backend (vhost-user-blk has no serial property)",
            "nics[0].queue_size: not supported by the qemu backend (128 is outside QEMU's 256…1024)",
        ])
    }

    @Test func buildThrowsEveryProblem() {
        var spec = QEMUGoldenSpecs.minimal
        spec.cpus.kvmHyperV = true
        spec.memory.thp = false
        #expect(throws: QEMUCommandLineError.invalidSpec(SpecValidationError(problems: [
            SpecProblem(field: "cpus.kvm_hyperv", reason: "not supported by the qemu backend"),
            SpecProblem(field: "memory.thp", reason: "not supported by the qemu backend (QEMU always advises transparent huge pages for guest RAM)"),
        ]))) {
            try QEMUCommandLine.build(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3))
        }
    }

    @Test func pciHotplugOnAnExplicitMicrovmIsRefused() {
        #expect(throws: QEMUCommandLineError.invalidSpec(SpecValidationError(problems: [
            SpecProblem(field: "machine", reason: "PCI hotplug needs q35, not microvm (qemu backend)"),
        ]))) {
            try QEMUCommandLine.build(for: QEMUGoldenSpecs.minimal,
                                      configuration: QEMULaunchConfiguration(qmpListenerFD: 3, machine: .microvm, pciHotplug: true))
        }
    }

    @Test func hostNICsMustMatchTheSpecification() {
        let spec = QEMUGoldenSpecs.tapNICs
        var nics = QEMUGoldenSpecs.tapHostNICs
        nics["eth1"] = nil
        #expect(throws: QEMUCommandLineError.nicNotPrepared(field: "nics[1]", id: "eth1")) {
            try QEMUCommandLine.build(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3, nics: nics))
        }
        nics = QEMUGoldenSpecs.tapHostNICs
        nics["eth1"]?.fds = [6]
        #expect(throws: QEMUCommandLineError.queuePairMismatch(field: "nics[1]", expected: 2, prepared: 1)) {
            try QEMUCommandLine.build(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3, nics: nics))
        }
        nics = QEMUGoldenSpecs.tapHostNICs
        nics["eth9"] = QEMUHostNIC(fds: [9], mac: MACAddress(octets: [2, 0, 0, 0, 0, 9]))
        #expect(throws: QEMUCommandLineError.unexpectedHostNIC(id: "eth9")) {
            try QEMUCommandLine.build(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3, nics: nics))
        }
    }

    @Test func onlyOneChardevCanOwnStdout() {
        var spec = QEMUGoldenSpecs.minimal
        spec.console = ConsoleSpec(mode: .tty)
        #expect(throws: QEMUCommandLineError.stdoutTwice) {
            try QEMUCommandLine.build(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3, console: .stdout))
        }
        #expect(throws: Never.self) {
            try QEMUCommandLine.build(for: spec, configuration: QEMULaunchConfiguration(qmpListenerFD: 3, console: .inheritedFD(4)))
        }
    }
}
