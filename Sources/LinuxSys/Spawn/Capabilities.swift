/// A Linux capability (`capabilities(7)`), numbered as the kernel numbers it.
public enum Capability: Int32, CaseIterable, Hashable, Sendable, Codable, CustomStringConvertible {
    case chown = 0
    case dacOverride = 1
    case dacReadSearch = 2
    case fowner = 3
    case fsetid = 4
    case kill = 5
    case setgid = 6
    case setuid = 7
    case setpcap = 8
    case linuxImmutable = 9
    case netBindService = 10
    case netBroadcast = 11
    case netAdmin = 12
    case netRaw = 13
    case ipcLock = 14
    case ipcOwner = 15
    case sysModule = 16
    case sysRawio = 17
    case sysChroot = 18
    case sysPtrace = 19
    case sysPacct = 20
    case sysAdmin = 21
    case sysBoot = 22
    case sysNice = 23
    case sysResource = 24
    case sysTime = 25
    case sysTtyConfig = 26
    case mknod = 27
    case lease = 28
    case auditWrite = 29
    case auditControl = 30
    case setfcap = 31
    case macOverride = 32
    case macAdmin = 33
    case syslog = 34
    case wakeAlarm = 35
    case blockSuspend = 36
    case auditRead = 37
    case perfmon = 38
    case bpf = 39
    case checkpointRestore = 40

    /// The kernel's name, e.g. `CAP_NET_ADMIN`.
    public var description: String { "CAP_" + Capability.names[Int(rawValue)] }

    private static let names = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
        "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
        "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
        "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
        "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
        "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
    ]

    /// Parses `CAP_NET_ADMIN` or `net_admin` (any case).
    public init?(name: String) {
        var key = name.uppercased()
        if key.hasPrefix("CAP_") { key.removeFirst(4) }
        guard let match = Capability.allCases.first(where: { $0.description == "CAP_" + key }) else { return nil }
        self = match
    }
}

/// A set of capabilities as the kernel stores it: one bit per capability number.
public struct CapabilitySet: SetAlgebra, Hashable, Sendable, Codable, CustomStringConvertible {
    public private(set) var bits: UInt64

    public init() { bits = 0 }
    public init(bits: UInt64) { self.bits = bits }
    public init<S: Sequence>(_ capabilities: S) where S.Element == Capability {
        bits = 0
        for capability in capabilities { bits |= 1 << UInt64(capability.rawValue) }
    }

    public static let empty = CapabilitySet()
    public static let all = CapabilitySet(Capability.allCases)

    public var capabilities: [Capability] { Capability.allCases.filter { contains($0) } }

    public var description: String {
        "[" + capabilities.map(\.description).joined(separator: ", ") + "]"
    }

    public func contains(_ member: Capability) -> Bool { bits & (1 << UInt64(member.rawValue)) != 0 }
    public func union(_ other: CapabilitySet) -> CapabilitySet { CapabilitySet(bits: bits | other.bits) }
    public func intersection(_ other: CapabilitySet) -> CapabilitySet { CapabilitySet(bits: bits & other.bits) }
    public func symmetricDifference(_ other: CapabilitySet) -> CapabilitySet { CapabilitySet(bits: bits ^ other.bits) }
    public func isSubset(of other: CapabilitySet) -> Bool { bits & ~other.bits == 0 }

    @discardableResult
    public mutating func insert(_ newMember: Capability) -> (inserted: Bool, memberAfterInsert: Capability) {
        let had = contains(newMember)
        bits |= 1 << UInt64(newMember.rawValue)
        return (!had, newMember)
    }

    @discardableResult
    public mutating func remove(_ member: Capability) -> Capability? {
        let had = contains(member)
        bits &= ~(1 << UInt64(member.rawValue))
        return had ? member : nil
    }

    @discardableResult
    public mutating func update(with newMember: Capability) -> Capability? {
        let had = contains(newMember)
        bits |= 1 << UInt64(newMember.rawValue)
        return had ? newMember : nil
    }

    public mutating func formUnion(_ other: CapabilitySet) { bits |= other.bits }
    public mutating func formIntersection(_ other: CapabilitySet) { bits &= other.bits }
    public mutating func formSymmetricDifference(_ other: CapabilitySet) { bits ^= other.bits }

    public static func == (lhs: CapabilitySet, rhs: CapabilitySet) -> Bool { lhs.bits == rhs.bits }
}

extension CapabilitySet: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: Capability...) { self.init(elements) }
}

/// The five capability sets a launched process starts with. All empty by default: a VMM that
/// needs nothing privileged gets nothing (CapEff/CapPrm/CapBnd/CapAmb/CapInh all 0).
public struct CapabilityPlan: Hashable, Sendable {
    /// What the process and anything it executes can ever hold (`PR_CAPBSET_DROP` for the rest).
    public var bounding: CapabilitySet
    public var permitted: CapabilitySet
    public var effective: CapabilitySet
    public var inheritable: CapabilitySet
    /// Kept across `execve` by a non-root process; must be permitted and inheritable.
    public var ambient: CapabilitySet

    public init(bounding: CapabilitySet = [], permitted: CapabilitySet = [], effective: CapabilitySet = [],
                inheritable: CapabilitySet = [], ambient: CapabilitySet = []) {
        self.bounding = bounding
        self.permitted = permitted
        self.effective = effective
        self.inheritable = inheritable
        self.ambient = ambient
    }

    /// Every set empty.
    public static let none = CapabilityPlan()

    /// The given capabilities kept through `execve` by a non-root process: in every set, ambient included.
    public static func keeping(_ capabilities: CapabilitySet) -> CapabilityPlan {
        CapabilityPlan(bounding: capabilities, permitted: capabilities, effective: capabilities,
                       inheritable: capabilities, ambient: capabilities)
    }
}
