#if canImport(Glibc)
import Glibc
#endif

/// The VMM side of the simulator: cloud-hypervisor's VM state machine and its answers, with no
/// I/O of its own. The server feeds it requests and performs what its replies ask for.
///
/// Modelled on the real VMM: the VM config exists after `vm.create`; `vm.boot` creates the VM
/// from it (checking the payload then); `vm.shutdown` drops the VM but keeps the config, so
/// `vm.info` says `Created` and `vm.boot` works again; `vm.delete` drops both and is idempotent.
public struct SimulatedVMM: Sendable {
    public enum RunState: String, Sendable {
        case running = "Running"
        case paused = "Paused"
    }

    /// What the server must do with a reply.
    public enum Afterward: Sendable, Equatable {
        case none
        /// The process exits (vmm.shutdown).
        case exitProcess
        /// The simulated guest powered off: the VMM process ends.
        case guestPowerOff
    }

    public struct Event: Sendable, Equatable {
        public var source: String
        public var event: String
        public var properties: [String: String]?
    }

    public struct Reply: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var events: [Event] = []
        /// Lines the guest wrote on its serial port.
        public var serialOutput: [String] = []
        public var afterward: Afterward = .none
    }

    public private(set) var config: [String: SimJSON]?
    public private(set) var runState: RunState?
    private var nextDeviceIndex = 0
    private var nextSlot = 1
    private var slots: [String: Int] = [:]
    /// Ids of NICs whose descriptors arrived with vm.add-net.
    private var fdsReceived: Set<String> = []
    public let pid: Int32

    public init(pid: Int32) {
        self.pid = pid
    }

    /// A VMM reporting this process's pid.
    public init() {
        self.pid = getpid()
    }

    /// The state `vm.info` reports.
    public var reportedState: String? {
        guard config != nil else { return nil }
        return runState?.rawValue ?? "Created"
    }

    // MARK: dispatch

    /// Handles one API call. `descriptors` are those received with the request (`SCM_RIGHTS`);
    /// the caller closes them afterwards.
    public mutating func handle(call: String, body: [UInt8], descriptors: [Int32]) -> Reply {
        switch call {
        case "vmm.ping": return ping()
        case "vmm.shutdown":
            var events: [Event] = []
            if config != nil {
                if runState != nil { events.append(Event(source: "vm", event: "shutdown")) }
                events.append(Event(source: "vm", event: "deleted"))
            }
            config = nil
            runState = nil
            events.append(Event(source: "vmm", event: "shutdown"))
            return Reply(status: 200, body: [], events: events, afterward: .exitProcess)
        case "vm.create": return create(body)
        case "vm.boot": return boot()
        case "vm.pause": return transition(action: "The VM could not be paused", from: .running, to: .paused, events: ("pausing", "paused"))
        case "vm.resume": return transition(action: "The VM could not resume", from: .paused, to: .running, events: ("resuming", "resumed"))
        case "vm.shutdown": return shutdown()
        case "vm.reboot": return reboot()
        case "vm.power-button":
            guard config != nil else { return error("Error triggering power button", "VM is not created") }
            guard runState != nil else { return error("Error triggering power button", "VM is not running") }
            return Reply(status: 204, body: [])
        case "vm.delete": return delete()
        case "vm.info": return info()
        case "vm.counters": return counters()
        case "vm.resize": return resize(body)
        case "vm.add-net": return addDevice(kind: "net", prefix: "_net", action: "The network device could not be added to the VM", body: body, descriptors: descriptors)
        case "vm.add-disk": return addDevice(kind: "disks", prefix: "_disk", action: "The disk could not be added to the VM", body: body, descriptors: descriptors)
        case "vm.remove-device": return removeDevice(body)
        default:
            return Reply(status: 404, body: [])
        }
    }

    /// The path key of `call` in the API document (what the body validator is given).
    public static func documentPath(of call: String) -> String { "/\(call)" }

    /// Whether `call` is answered to GET (true) or PUT (false); nil for calls the simulator lacks.
    public static func callsAnswering(get call: String) -> Bool? {
        switch call {
        case "vmm.ping", "vm.info", "vm.counters": true
        case "vmm.shutdown", "vm.create", "vm.boot", "vm.pause", "vm.resume", "vm.shutdown", "vm.reboot",
             "vm.power-button", "vm.delete", "vm.resize", "vm.add-net", "vm.add-disk", "vm.remove-device": false
        default: nil
        }
    }

    /// Calls that read a JSON body.
    public static let callsWithBody: Set<String> = ["vm.create", "vm.resize", "vm.add-net", "vm.add-disk", "vm.remove-device"]

    // MARK: calls

    private func ping() -> Reply {
        let body: SimJSON = .object([
            "build_version": .string("ch-sim (test double)"),
            "version": .string("v52.0-ch-sim"),
            "pid": .int(Int64(pid)),
            "features": .array([.string("kvm")]),
        ])
        return Reply(status: 200, body: body.encoded())
    }

    private mutating func create(_ body: [UInt8]) -> Reply {
        guard config == nil else { return error("The VM could not be created", "VM is already created") }
        guard case .success(let json) = SimJSON.parse(body), var object = json.objectValue else {
            return error("The VM could not be created", "invalid config")
        }
        // Defaults the real VMM fills in (and echoes in vm.info).
        if object["cpus"] == nil { object["cpus"] = .object(["boot_vcpus": .int(1), "max_vcpus": .int(1)]) }
        if object["memory"] == nil { object["memory"] = .object(["size": .int(512 << 20)]) }
        if object["serial"] == nil { object["serial"] = .object(["mode": .string("Null")]) }
        if object["console"] == nil { object["console"] = .object(["mode": .string("Tty")]) }
        for (key, prefix) in [("disks", "_disk"), ("net", "_net")] {
            guard let items = object[key]?.arrayValue else { continue }
            object[key] = .array(items.map { assignID($0, prefix: prefix) })
        }
        config = object
        return Reply(status: 204, body: [])
    }

    private mutating func boot() -> Reply {
        let action = "The VM could not boot"
        guard let config else { return error(action, "VM config is missing") }
        if let runState { return error(action, "invalid VM state transition: \(runState.rawValue) to Running") }
        let payload = config["payload"]?.objectValue ?? [:]
        guard let kernelPath = payload["kernel"]?.stringValue ?? payload["firmware"]?.stringValue else {
            return error(action, "Error validating configuration", "No kernel or firmware specified")
        }
        guard let kernel = readFile(kernelPath) else {
            return error(action, payload["kernel"] != nil ? "Cannot open kernel file" : "Cannot open firmware file",
                         "No such file or directory (os error 2)")
        }
        if let initramfs = payload["initramfs"]?.stringValue, access(initramfs, R_OK) != 0 {
            return error(action, "Cannot open the initramfs image", "No such file or directory (os error 2)")
        }
        for net in config["net"]?.arrayValue ?? [] where net["fds"] != nil && !fdsReceived.contains(net["id"]?.stringValue ?? "") {
            // Descriptors travel only with vm.add-net (SCM_RIGHTS); numbers in a vm.create body
            // mean nothing in the VMM's process.
            return error(action, "Error from device manager", "Cannot create virtio-net device",
                         "Invalid file descriptors: \(net["fds"].map { String(decoding: $0.encoded(), as: UTF8.self) } ?? "") were not passed to the VMM")
        }
        for disk in config["disks"]?.arrayValue ?? [] {
            if let path = disk["path"]?.stringValue, access(path, R_OK) != 0 {
                return error(action, "Error from device manager", "Cannot open disk path \(path)",
                             "No such file or directory (os error 2)")
            }
        }
        runState = .running
        var reply = Reply(status: 204, body: [], events: [Event(source: "vm", event: "booting"), Event(source: "vm", event: "booted")])
        runGuest(kernel: kernel, cmdline: payload["cmdline"]?.stringValue ?? "", into: &reply)
        return reply
    }

    /// The project's tiny guest prints its marker and, when asked on its cmdline, powers off.
    private mutating func runGuest(kernel: [UInt8], cmdline: String, into reply: inout Reply) {
        let marker = Array("QARAX-GUEST-READY".utf8)
        guard contains(kernel, marker) else { return }
        reply.serialOutput.append("QARAX-GUEST-READY\n")
        if cmdline.split(separator: " ").contains("qarax.poweroff=1") {
            reply.afterward = .guestPowerOff
        }
    }

    /// The events of a guest power-off, and the state it leaves (the process ends next).
    public mutating func guestPowerOff() -> [Event] {
        runState = nil
        return [Event(source: "vm", event: "shutdown"), Event(source: "vmm", event: "shutdown")]
    }

    private mutating func transition(action: String, from: RunState, to: RunState, events: (String, String)) -> Reply {
        guard config != nil else { return error(action, "VM is not created") }
        guard let runState else { return error(action, "VM is not running") }
        guard runState == from else {
            return error(action, "invalid VM state transition: \(runState.rawValue) to \(to.rawValue)")
        }
        self.runState = to
        return Reply(status: 204, body: [], events: [Event(source: "vm", event: events.0), Event(source: "vm", event: events.1)])
    }

    private mutating func shutdown() -> Reply {
        let action = "The VM could not shutdown"
        guard config != nil else { return error(action, "VM is not created") }
        guard runState != nil else { return error(action, "VM is not running") }
        runState = nil
        return Reply(status: 204, body: [], events: [Event(source: "vm", event: "shutdown")])
    }

    private mutating func reboot() -> Reply {
        let action = "The VM could not reboot"
        guard let config else { return error(action, "VM is not created") }
        guard let runState else { return error(action, "VM is not running") }
        guard runState == .running else { return error(action, "invalid VM state transition: Paused to Shutdown") }
        var reply = Reply(status: 204, body: [], events: [Event(source: "vm", event: "rebooting"), Event(source: "vm", event: "rebooted")])
        let payload = config["payload"]?.objectValue ?? [:]
        if let kernel = (payload["kernel"]?.stringValue).flatMap(readFile) {
            runGuest(kernel: kernel, cmdline: payload["cmdline"]?.stringValue ?? "", into: &reply)
        }
        return reply
    }

    private mutating func delete() -> Reply {
        guard config != nil else { return Reply(status: 204, body: []) }
        var events: [Event] = []
        if runState != nil { events.append(Event(source: "vm", event: "shutdown")) }
        events.append(Event(source: "vm", event: "deleted"))
        config = nil
        runState = nil
        return Reply(status: 204, body: [], events: events)
    }

    private func info() -> Reply {
        guard let config, let state = reportedState else { return error("The VM info is not available", "VM is not created") }
        let memory = config["memory"]
        let size = (memory?["size"]?.intValue ?? 0) + (memory?["hotplugged_size"]?.intValue ?? 0)
        let body: SimJSON = .object([
            "config": .object(config),
            "state": .string(state),
            "memory_actual_size": .int(size),
        ])
        return Reply(status: 200, body: body.encoded())
    }

    private func counters() -> Reply {
        guard let config else { return error("Error getting counters", "VM is not created") }
        guard runState != nil else { return error("Error getting counters", "VM is not running") }
        var result: [String: SimJSON] = [:]
        for disk in config["disks"]?.arrayValue ?? [] {
            if let id = disk["id"]?.stringValue {
                result[id] = .object(["read_bytes": .int(0), "read_ops": .int(0), "write_bytes": .int(0), "write_ops": .int(0)])
            }
        }
        for net in config["net"]?.arrayValue ?? [] {
            if let id = net["id"]?.stringValue {
                result[id] = .object(["rx_bytes": .int(0), "rx_frames": .int(0), "tx_bytes": .int(0), "tx_frames": .int(0)])
            }
        }
        return Reply(status: 200, body: SimJSON.object(result).encoded())
    }

    private mutating func resize(_ body: [UInt8]) -> Reply {
        let action = "The VM could not be resized"
        guard var config else { return error(action, "VM is not created") }
        guard case .success(let json) = SimJSON.parse(body) else { return error(action, "invalid request") }
        var cpus = config["cpus"]?.objectValue ?? [:]
        var memory = config["memory"]?.objectValue ?? [:]
        if let vcpus = json["desired_vcpus"]?.intValue {
            let maximum = cpus["max_vcpus"]?.intValue ?? 1
            guard vcpus <= maximum else {
                return error(action, "Error resizing VM", "Cannot add more than \(maximum) vCPUs (requested \(vcpus))")
            }
            cpus["boot_vcpus"] = .int(vcpus)
        }
        if let ram = json["desired_ram"]?.intValue {
            let base = memory["size"]?.intValue ?? 0
            let hotplug = memory["hotplug_size"]?.intValue ?? 0
            guard ram >= base, ram <= base + hotplug else {
                return error(action, "Error resizing VM", "Memory resize to \(ram) bytes is outside \(base)...\(base + hotplug)")
            }
            memory["hotplugged_size"] = .int(ram - base)
        }
        config["cpus"] = .object(cpus)
        config["memory"] = .object(memory)
        self.config = config
        return Reply(status: 204, body: [])
    }

    private mutating func addDevice(kind: String, prefix: String, action: String, body: [UInt8], descriptors: [Int32]) -> Reply {
        guard var config else { return error(action, "VM is not created") }
        guard case .success(let json) = SimJSON.parse(body), var device = json.objectValue else {
            return error(action, "invalid request")
        }
        if kind == "net" {
            if let declared = device["fds"]?.arrayValue, declared.count != descriptors.count {
                return error(action, "Invalid network configuration",
                             "fds declares \(declared.count) descriptors but \(descriptors.count) were passed")
            }
            if !descriptors.isEmpty {
                let queues = device["num_queues"]?.intValue ?? Int64(2 * descriptors.count)
                guard queues == Int64(2 * descriptors.count) else {
                    return error(action, "Invalid network configuration",
                                 "num_queues \(queues) needs \(queues / 2) descriptors (one per queue pair), got \(descriptors.count)")
                }
                for fd in descriptors where fcntl(fd, F_GETFD) < 0 {
                    return error(action, "Invalid network configuration", "descriptor \(fd) is not open")
                }
                device["fds"] = .array(descriptors.map { .int(Int64($0)) })
            } else if device["tap"] == nil, device["vhost_user"]?.boolValue != true {
                return error(action, "Error from device manager", "Cannot create TAP device", "Operation not permitted (os error 1)")
            }
        } else if runState != nil, let path = device["path"]?.stringValue, access(path, R_OK) != 0 {
            return error(action, "Error from device manager", "Cannot open disk path \(path)", "No such file or directory (os error 2)")
        }
        let existing = (config["disks"]?.arrayValue ?? []) + (config["net"]?.arrayValue ?? [])
        if let id = device["id"]?.stringValue, existing.contains(where: { $0["id"]?.stringValue == id }) {
            return error(action, "Identifier \(id) is not unique")
        }
        let withID = assignID(.object(device), prefix: prefix)
        if kind == "net", !descriptors.isEmpty, let id = withID["id"]?.stringValue { fdsReceived.insert(id) }
        config[kind] = .array((config[kind]?.arrayValue ?? []) + [withID])
        self.config = config
        guard runState != nil, let id = withID["id"]?.stringValue else { return Reply(status: 204, body: []) }
        let slot = nextSlot
        nextSlot += 1
        slots[id] = slot
        let bdf = "0000:00:" + (slot < 16 ? "0" : "") + String(slot, radix: 16) + ".0"
        return Reply(status: 200, body: SimJSON.object(["id": .string(id), "bdf": .string(bdf)]).encoded())
    }

    private mutating func removeDevice(_ body: [UInt8]) -> Reply {
        let action = "The device could not be removed from the VM"
        guard var config else { return error(action, "VM is not created") }
        guard case .success(let json) = SimJSON.parse(body), let id = json["id"]?.stringValue else {
            return error(action, "invalid request")
        }
        var found = false
        for key in ["disks", "net"] {
            guard let items = config[key]?.arrayValue else { continue }
            let kept = items.filter { $0["id"]?.stringValue != id }
            if kept.count != items.count { found = true }
            config[key] = .array(kept)
        }
        guard found else { return error(action, "Error from device manager", "No device with identifier \(id)") }
        slots[id] = nil
        fdsReceived.remove(id)
        self.config = config
        return Reply(status: 204, body: [])
    }

    // MARK: helpers

    private mutating func assignID(_ device: SimJSON, prefix: String) -> SimJSON {
        guard var object = device.objectValue else { return device }
        if object["id"] == nil {
            object["id"] = .string("\(prefix)\(nextDeviceIndex)")
            nextDeviceIndex += 1
        }
        return .object(object)
    }

    /// A 500 with CH's chain: "Error from API", the action, then the causes.
    private func error(_ action: String, _ causes: String...) -> Reply {
        Reply(status: 500, body: SimJSON.array(([ "Error from API", action] + causes).map(SimJSON.string)).encoded())
    }

    private func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count < 64 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, haystack.count >= needle.count else { return false }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first, haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
