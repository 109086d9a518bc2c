public import VMModel

/// A command-line flag value that does not parse: the flag, the value and why.
public struct FlagError: Error, Hashable, Sendable, CustomStringConvertible {
    public let flag: String
    public let value: String
    public let reason: String

    public init(flag: String, value: String, reason: String) {
        self.flag = flag
        self.value = value
        self.reason = reason
    }

    public var description: String { "\(flag) \(value.debugDescription): \(reason)" }
}

/// Builds a ``VMSpec`` from `qarax-node vm create` flags (the specification's rules are checked by
/// the node; this only turns text into fields and names the flag when the text is wrong).
public struct VMSpecFlags: Hashable, Sendable {
    public var name: String
    public var vcpus: Int = 1
    public var memory: String = "256M"
    public var kernel: String?
    public var initramfs: String?
    public var cmdline: String?
    public var firmware: String?
    /// `tap[,mtu=N][,mac=M][,bridge=B][,queues=N]` or `macvtap,parent=IF[,mode=bridge][,mtu=N][,mac=M]`.
    public var nets: [String] = []
    /// `PATH[,readonly][,direct]`.
    public var disks: [String] = []
    /// A hugepage size (`2M`, `1G`) backing guest memory.
    public var hugepages: String?

    public init(name: String) {
        self.name = name
    }

    public func spec() throws(FlagError) -> VMSpec {
        guard vcpus >= 1 else { throw FlagError(flag: "--vcpus", value: "\(vcpus)", reason: "must be at least 1") }
        let size: ByteSize
        do { size = try ByteSize(parsing: memory) } catch {
            throw FlagError(flag: "--memory", value: memory, reason: "\(error)")
        }
        var memorySpec = MemorySpec(size: size)
        if let hugepages {
            do {
                memorySpec.hugepageSize = try ByteSize(parsing: hugepages)
                memorySpec.hugepages = true
            } catch {
                throw FlagError(flag: "--hugepages", value: hugepages, reason: "\(error) (a page size: 2M or 1G)")
            }
        }
        var spec = VMSpec(name: name, cpus: CPUSpec(bootVCPUs: vcpus), memory: memorySpec,
                          payload: PayloadSpec(kernel: kernel, initramfs: initramfs, cmdline: cmdline, firmware: firmware),
                          serial: ConsoleSpec(mode: .tty))
        for (index, text) in nets.enumerated() { spec.nics.append(try Self.nic(text, index: index)) }
        for (index, text) in disks.enumerated() { spec.disks.append(try Self.disk(text, index: index)) }
        return spec
    }

    /// `kind[,key=value…]`.
    static func options(_ text: String, flag: String) throws(FlagError) -> (head: String, options: [(String, String?)]) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let head = parts.first, !head.isEmpty else { throw FlagError(flag: flag, value: text, reason: "is empty") }
        var options: [(String, String?)] = []
        for part in parts.dropFirst() {
            guard !part.isEmpty else { throw FlagError(flag: flag, value: text, reason: "has an empty option") }
            if let equals = part.firstIndex(of: "=") {
                options.append((String(part[..<equals]), String(part[part.index(after: equals)...])))
            } else {
                options.append((part, nil))
            }
        }
        return (head, options)
    }

    static func nic(_ text: String, index: Int) throws(FlagError) -> NICSpec {
        let flag = "--net"
        let (head, options) = try options(text, flag: flag)
        guard let kind = NICKind(rawValue: head), kind != .vhostUser else {
            throw FlagError(flag: flag, value: text, reason: "\(head.debugDescription) is not a NIC kind (tap or macvtap)")
        }
        var nic = NICSpec(id: "net\(index)", kind: kind)
        for (key, value) in options {
            func required() throws(FlagError) -> String {
                guard let value, !value.isEmpty else { throw FlagError(flag: flag, value: text, reason: "\(key) needs a value (\(key)=…)") }
                return value
            }
            func number() throws(FlagError) -> Int {
                let raw = try required()
                guard let parsed = Int(raw) else { throw FlagError(flag: flag, value: text, reason: "\(key)=\(raw) is not a number") }
                return parsed
            }
            switch (key, kind) {
            case ("mtu", _): nic.mtu = try number()
            case ("mac", _): nic.mac = try required()
            case ("id", _): nic.id = try required()
            case ("queues", _): nic.numQueues = 2 * (try number())
            case ("bridge", .tap): nic.bridge = try required()
            case ("parent", .macvtap): nic.parent = try required()
            case ("mode", .macvtap):
                let raw = try required()
                guard let mode = MacvtapMode(rawValue: raw) else {
                    throw FlagError(flag: flag, value: text, reason: "mode=\(raw) is not a macvtap mode (bridge, vepa, private, passthru)")
                }
                nic.mode = mode
            default:
                let allowed = kind == .tap ? "mtu, mac, bridge, queues, id" : "parent, mode, mtu, mac, queues, id"
                throw FlagError(flag: flag, value: text, reason: "\(key) is not an option of a \(kind.rawValue) NIC (\(allowed))")
            }
        }
        if kind == .macvtap {
            guard nic.parent != nil else { throw FlagError(flag: flag, value: text, reason: "a macvtap NIC needs parent=IF") }
            if nic.mode == nil { nic.mode = .bridge }
        }
        return nic
    }

    static func disk(_ text: String, index: Int) throws(FlagError) -> DiskSpec {
        let flag = "--disk"
        let (path, options) = try options(text, flag: flag)
        var disk = DiskSpec(id: "disk\(index)", path: path)
        for (key, value) in options {
            switch (key, value) {
            case ("readonly", nil): disk.readonly = true
            case ("direct", nil): disk.direct = true
            case ("id", let value?) where !value.isEmpty: disk.id = value
            default:
                throw FlagError(flag: flag, value: text, reason: "\(key) is not a disk option (readonly, direct, id=…)")
            }
        }
        return disk
    }
}
