/// One item of the host readiness report.
public enum DoctorCheck: String, CaseIterable, Sendable, Codable {
    case kernel
    case kvm
    case tun
    case vhostNet = "vhost_net"
    case vhostVsock = "vhost_vsock"
    case cgroups
    case seccomp
    case hugepages
    case cloudHypervisor = "cloud_hypervisor"
    case qemu
    case vmm
    case capabilities

    /// The JSON key and the name shown in the text report.
    public var key: String { rawValue }

    /// Whether the host can run VMs only when this check passes.
    public var isRequired: Bool {
        switch self {
        case .kernel, .kvm, .tun, .cgroups, .seccomp, .vmm, .capabilities: true
        case .vhostNet, .vhostVsock, .hugepages, .cloudHypervisor, .qemu: false
        }
    }

    /// What the check looks at and why qarax needs it (used by `--help`).
    public var meaning: String {
        switch self {
        case .kernel: "Linux 5.10 or newer (pidfds, clone3 into a cgroup, close_range)."
        case .kvm: "/dev/kvm opens, reports API version 12 and KVM_CREATE_VM succeeds: hardware virtualization works."
        case .tun: "/dev/net/tun opens: VM network interfaces are TAP devices."
        case .vhostNet: "/dev/vhost-net opens: in-kernel virtio-net datapath for QEMU (vhost=on)."
        case .vhostVsock: "/dev/vhost-vsock opens: QEMU's vhost-vsock-pci host<->guest sockets; cloud-hypervisor's vsock does not need it."
        case .cgroups: "cgroup hierarchies (v2, v1 or hybrid) hold the cpu, memory and pids controllers and are writable: per-VM limits."
        case .seccomp: "The kernel accepts seccomp filters (SECCOMP_RET_KILL_PROCESS and SECCOMP_RET_ERRNO): VMM processes are confined."
        case .hugepages: "Hugepages reserved per size (total/free) and NUMA nodes: only VMs backed by hugepages need them."
        case .cloudHypervisor: "cloud-hypervisor found (PATH or --cloud-hypervisor-binary) and `--version` answers."
        case .qemu: "qemu-system-x86_64 found (PATH or --qemu-binary) and `--version` answers."
        case .vmm: "At least one VMM works, and every VMM named by a flag works."
        case .capabilities: "The effective capabilities include what launching jailed VMMs and preparing networks need."
        }
    }
}

/// A JSON-shaped value for a check's details.
public indirect enum DoctorValue: Sendable, Equatable, Encodable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case array([DoctorValue])
    case object([String: DoctorValue])

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case let .string(value): try container.encode(value)
        case let .int(value): try container.encode(value)
        case let .bool(value): try container.encode(value)
        case let .array(value): try container.encode(value)
        case let .object(value): try container.encode(value)
        }
    }
}

/// The outcome of one check: whether it passed, what was found, and how to fix it when it did not.
public struct CheckResult: Sendable, Equatable {
    public var check: DoctorCheck
    public var passed: Bool
    /// What was found, in one line.
    public var summary: String
    /// How to fix it; set whenever `passed` is false.
    public var fix: String?
    /// Machine-readable findings (versions, controllers, counts) for `--json`.
    public var details: [String: DoctorValue]

    public init(_ check: DoctorCheck, passed: Bool, summary: String, fix: String? = nil,
                details: [String: DoctorValue] = [:]) {
        self.check = check
        self.passed = passed
        self.summary = summary
        self.fix = fix
        self.details = details
    }

    public var isRequired: Bool { check.isRequired }
}

/// Every check's result; the host is ready when every required check passed.
public struct DoctorReport: Sendable, Equatable {
    public var results: [CheckResult]

    public init(results: [CheckResult]) { self.results = results }

    public var ready: Bool { results.allSatisfy { $0.passed || !$0.isRequired } }

    /// Required checks that failed, in report order.
    public var failedRequired: [DoctorCheck] { results.filter { !$0.passed && $0.isRequired }.map(\.check) }

    /// Optional checks that failed, in report order.
    public var failedOptional: [DoctorCheck] { results.filter { !$0.passed && !$0.isRequired }.map(\.check) }

    public subscript(check: DoctorCheck) -> CheckResult? { results.first { $0.check == check } }
}
