/// Where an API socket or event monitor comes from: an inherited descriptor or a path.
public enum SimEndpoint: Sendable, Equatable {
    case fd(Int32)
    case path(String)

    /// Parses cloud-hypervisor's `fd=N` / `path=P` syntax.
    static func parse(_ text: String, flag: String) throws(SimOptionsError) -> SimEndpoint {
        for part in text.split(separator: ",") {
            if part.hasPrefix("fd=") {
                guard let fd = Int32(part.dropFirst(3)), fd >= 0 else {
                    throw SimOptionsError("\(flag): '\(part)' is not a descriptor number")
                }
                return .fd(fd)
            }
            if part.hasPrefix("path=") {
                let path = String(part.dropFirst(5))
                guard !path.isEmpty else { throw SimOptionsError("\(flag): empty path") }
                return .path(path)
            }
        }
        throw SimOptionsError("\(flag): expected fd=N or path=P, got '\(text)'")
    }
}

/// Faults the simulator injects on request (`--sim-fault` or `QARAX_CH_SIM_FAULTS`).
public struct SimFaults: Sendable, Equatable {
    /// The process kills itself (SIGKILL) after reading one of these calls, before answering.
    public var crashAt: Set<String> = []
    /// The process never answers these calls (and serves nothing afterwards).
    public var hangAt: Set<String> = []
    /// These calls answer 500 with an injected error chain.
    public var http500At: Set<String> = []
    /// These calls answer 200 with a body of `oversizeBytes` bytes.
    public var oversizeAt: Set<String> = []
    public var oversizeBytes = 2 << 20
    /// Every answer is delayed this long.
    public var slow: Duration?
    /// After a guest power-off, one more request is answered with the VMM's closed-channel error
    /// (what a request racing the power-off gets) before the process ends.
    public var closedChannelAfterPoweroff = false

    public init() {}

    /// Adds faults from a comma-separated list such as `crash-at=vm.boot,slow=50ms`.
    mutating func add(_ spec: String) throws(SimOptionsError) {
        for item in spec.split(separator: ",").map(String.init) where !item.isEmpty {
            let pieces = item.split(separator: "=", maxSplits: 1).map(String.init)
            let key = pieces[0]
            let value = pieces.count > 1 ? pieces[1] : ""
            switch key {
            case "crash-at": crashAt.insert(value)
            case "hang-at": hangAt.insert(value)
            case "http500-at": http500At.insert(value)
            case "oversize-at": oversizeAt.insert(value)
            case "oversize-bytes":
                guard let n = Int(value), n > 0 else { throw SimOptionsError("--sim-fault oversize-bytes=\(value): not a positive number") }
                oversizeBytes = n
            case "slow": slow = try Self.duration(value)
            case "closed-channel-after-poweroff": closedChannelAfterPoweroff = true
            default:
                throw SimOptionsError("--sim-fault: unknown fault '\(key)' (crash-at, hang-at, http500-at, oversize-at, oversize-bytes, slow, closed-channel-after-poweroff)")
            }
            if ["crash-at", "hang-at", "http500-at", "oversize-at"].contains(key), value.isEmpty {
                throw SimOptionsError("--sim-fault \(key): needs a call name, e.g. \(key)=vm.boot")
            }
        }
    }

    static func duration(_ text: String) throws(SimOptionsError) -> Duration {
        if text.hasSuffix("ms"), let n = Int64(text.dropLast(2)) { return .milliseconds(n) }
        if text.hasSuffix("s"), let n = Int64(text.dropLast()) { return .seconds(n) }
        throw SimOptionsError("--sim-fault slow=\(text): expected e.g. 50ms or 2s")
    }
}

/// A command line the simulator rejects.
public struct SimOptionsError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The simulator's command line: cloud-hypervisor's flags (the ones it acts on, and the others
/// it accepts and ignores) plus `--sim-fault`.
public struct SimulatorOptions: Sendable, Equatable {
    public var apiSocket: SimEndpoint?
    public var eventMonitor: SimEndpoint?
    public var seccomp = "true"
    public var logFile: String?
    public var verbosity = 0
    public var faults = SimFaults()
    public var showHelp = false
    public var showVersion = false
    /// Flags accepted for compatibility and not acted on.
    public var ignored: [String] = []

    public init() {}

    /// Real cloud-hypervisor flags that take a value and that the simulator ignores.
    static let ignoredValueFlags: Set<String> = [
        "--cpus", "--memory", "--memory-zone", "--firmware", "--kernel", "--initramfs", "--cmdline",
        "--rate-limit-group", "--disk", "--net", "--rng", "--balloon", "--fs", "--pmem", "--serial",
        "--console", "--debug-console", "--device", "--user-device", "--vdpa", "--vsock", "--numa",
        "--restore", "--platform", "--tpm", "--landlock-rules", "--pci-segment", "--watchdog-timeout",
        "--gdb", "--igvm", "--host-data", "--log-level", "--http-server-threads",
    ]
    /// Real cloud-hypervisor flags without a value that the simulator ignores.
    static let ignoredBooleanFlags: Set<String> = ["--landlock", "--pvpanic", "--watchdog", "--iommu", "--dbus-system-bus"]

    /// Parses `arguments` (without the program name); `environment` may add `QARAX_CH_SIM_FAULTS`.
    public static func parse(_ arguments: [String], environment: [String: String] = [:]) throws(SimOptionsError) -> SimulatorOptions {
        var options = SimulatorOptions()
        if let faults = environment["QARAX_CH_SIM_FAULTS"] { try options.faults.add(faults) }
        var i = 0
        func value(_ flag: String) throws(SimOptionsError) -> String {
            i += 1
            guard i < arguments.count else { throw SimOptionsError("\(flag) needs a value") }
            return arguments[i]
        }
        while i < arguments.count {
            let raw = arguments[i]
            // --flag=value is accepted too.
            var flag = raw
            var inline: String?
            if raw.hasPrefix("--"), let eq = raw.firstIndex(of: "=") {
                flag = String(raw[..<eq])
                inline = String(raw[raw.index(after: eq)...])
            }
            func argument() throws(SimOptionsError) -> String {
                if let inline { return inline }
                return try value(flag)
            }
            switch flag {
            case "-h", "--help": options.showHelp = true
            case "-V", "--version": options.showVersion = true
            case "--api-socket": options.apiSocket = try SimEndpoint.parse(try argument(), flag: flag)
            case "--event-monitor": options.eventMonitor = try SimEndpoint.parse(try argument(), flag: flag)
            case "--seccomp":
                let v = try argument()
                guard ["true", "false", "log", "errno"].contains(v) else {
                    throw SimOptionsError("--seccomp: '\(v)' is not one of true, false, log, errno")
                }
                options.seccomp = v
            case "--log-file": options.logFile = try argument()
            case "--sim-fault": try options.faults.add(try argument())
            default:
                if flag.hasPrefix("-"), !flag.hasPrefix("--"), flag.dropFirst().allSatisfy({ $0 == "v" }) {
                    options.verbosity += flag.count - 1
                } else if ignoredValueFlags.contains(flag) {
                    options.ignored.append("\(flag) \(try argument())")
                } else if ignoredBooleanFlags.contains(flag) {
                    options.ignored.append(flag)
                } else {
                    throw SimOptionsError("unexpected argument '\(raw)' (try --help)")
                }
            }
            i += 1
        }
        return options
    }

    public static let helpText = """
    ch-sim: a TEST DOUBLE of cloud-hypervisor's REST API. It is not a VMM and runs no guest.

    It serves cloud-hypervisor's API (http://localhost/api/v1/...) on a Unix socket with the real
    VMM's status codes, error format (JSON arrays of strings; 400 only for bodies that fail to
    deserialize, 500 for every other error) and state machine, checks request bodies against
    cloud-hypervisor's OpenAPI document (as leniently as the VMM), writes events in the real
    --event-monitor format, accepts descriptors passed with vm.add-net, and simulates the
    project's tiny guest: after vm.boot, a kernel file containing QARAX-GUEST-READY makes it
    print that line on the configured serial port, and a cmdline with qarax.poweroff=1 makes the
    guest power off, which ends the process (as it does the real VMM's).

    USAGE: ch-sim --api-socket fd=N|path=P [--event-monitor fd=N|path=P] [options]

    OPTIONS:
      --api-socket fd=N|path=P      listening socket inherited as fd N, or bound at path P
      --event-monitor fd=N|path=P   where events go (pretty-printed JSON objects, blank-line separated)
      --seccomp true|false|log|errno  accepted; the simulator installs no filter
      --log-file P                  write the log there instead of stderr
      -v                            more logging (repeatable)
      --sim-fault SPEC              inject faults; SPEC is a comma-separated list of
                                      crash-at=CALL   die by SIGKILL when CALL arrives, before answering
                                      hang-at=CALL    never answer CALL (and nothing after it)
                                      http500-at=CALL answer CALL with 500 and an injected error chain
                                      oversize-at=CALL answer CALL with an oversized 200 body
                                      oversize-bytes=N size of that body (default 2 MiB)
                                      slow=50ms       delay every answer
                                      closed-channel-after-poweroff  answer one request racing a
                                                      guest power-off with the VMM's closed-channel error
                                    (also read from $QARAX_CH_SIM_FAULTS)
      -h, --help                    this text
      -V, --version                 version

    Other cloud-hypervisor flags (--cpus, --memory, --kernel, --disk, --net, --serial, --console,
    --landlock, ...) are accepted and ignored: configure the VM through vm.create.
    """
}
