import VMModel

/// A specification that uses every feature and is valid; tests break one thing at a time.
enum Fixtures {
    static let full = VMSpec(
        name: "web-1", id: "vm-0001",
        cpus: CPUSpec(bootVCPUs: 2, maxVCPUs: 4,
                      topology: CPUTopologySpec(threadsPerCore: 1, coresPerDie: 2, diesPerPackage: 1, packages: 2),
                      kvmHyperV: false, affinity: [CPUAffinitySpec(vcpu: 0, hostCPUs: [0, 1])]),
        memory: MemorySpec(size: .gibibytes(1), hotplugSize: .gibibytes(1), shared: true),
        payload: PayloadSpec(kernel: "/var/lib/qarax/images/vmlinux", initramfs: "/var/lib/qarax/images/initrd.img",
                             cmdline: "console=ttyS0 root=/dev/vda"),
        disks: [
            DiskSpec(id: "root", path: "/var/lib/qarax/disks/root.img", serial: "root-serial"),
            DiskSpec(id: "data", path: "/var/lib/qarax/disks/data.img", readonly: true, direct: true,
                     numQueues: 2, queueSize: 256, rateLimitGroup: "io"),
            DiskSpec(id: "scratch", path: "/var/lib/qarax/disks/scratch.img",
                     rateLimiter: RateLimiterSpec(ops: TokenBucketSpec(size: 1000, refillTime: 1000))),
            DiskSpec(id: "blk-vu", vhostUser: true, vhostSocket: "/run/qarax/vhost/blk.sock"),
        ],
        nics: [
            NICSpec(id: "net0", kind: .tap, bridge: "br0", mac: "52:54:00:12:34:56", hostMAC: "52:54:00:12:34:57", mtu: 9000),
            NICSpec(id: "net1", kind: .macvtap, parent: "eth0", mode: .vepa, numQueues: 4, queueSize: 1024),
            NICSpec(id: "net2", kind: .vhostUser, mac: "02:00:00:00:00:02", mtu: 1500,
                    vhostSocket: "/run/qarax/vhost/net.sock", vhostMode: .server),
        ],
        serial: ConsoleSpec(mode: .socket, path: "/run/qarax/vm/serial.sock"),
        console: ConsoleSpec(mode: .off),
        rng: RNGSpec(source: "/dev/urandom"),
        vsock: VsockSpec(cid: 3, socket: "/run/qarax/vm/vsock.sock"),
        rateLimitGroups: [RateLimitGroupSpec(id: "io", rateLimiter: RateLimiterSpec(
            bandwidth: TokenBucketSpec(size: 10 << 20, refillTime: 100, oneTimeBurst: 1 << 20)))]
    )

    static let minimal = VMSpec(
        name: "tiny", cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(256)),
        payload: PayloadSpec(kernel: "/var/lib/qarax/images/pvh.elf"))
}
