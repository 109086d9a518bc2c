public import LinuxSys

/// Why a QMP exchange failed. A command QEMU refused keeps QMP's error `class` and `desc`.
public enum QMPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// QEMU answered `command` with an error, e.g. class `GenericError`, `CommandNotFound`,
    /// `DeviceNotFound`.
    case command(command: String, errorClass: String, description: String)
    /// A socket call failed.
    case system(SystemError)
    /// QEMU sent something that is not a QMP message (not JSON, or no known member).
    case malformed(String)
    /// A line exceeded the framer's cap; the connection is dropped.
    case lineTooLong(limit: Int)
    /// The connection is closed (QEMU exited, or ``QMPClient/close()`` was called); commands
    /// still waiting fail with this.
    case disconnected
    /// The waiting task was cancelled; the command may still run in QEMU.
    case cancelled

    public var description: String {
        switch self {
        case .command(let command, let errorClass, let description): "QMP \(command): \(errorClass): \(description)"
        case .system(let error): "QMP socket: \(error)"
        case .malformed(let what): "QMP: malformed message: \(what)"
        case .lineTooLong(let limit): "QMP: message longer than \(limit) bytes"
        case .disconnected: "QMP: connection closed"
        case .cancelled: "QMP: cancelled while waiting for a reply"
        }
    }
}

/// QEMU's run state as `query-status` reports it (an open set: unknown states keep their name).
public struct QMPRunState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let running = QMPRunState(rawValue: "running")
    public static let paused = QMPRunState(rawValue: "paused")
    public static let prelaunch = QMPRunState(rawValue: "prelaunch")
    public static let shutdown = QMPRunState(rawValue: "shutdown")
    public static let suspended = QMPRunState(rawValue: "suspended")
    public static let guestPanicked = QMPRunState(rawValue: "guest-panicked")
    public static let internalError = QMPRunState(rawValue: "internal-error")
    public static let ioError = QMPRunState(rawValue: "io-error")
    public static let watchdog = QMPRunState(rawValue: "watchdog")
    public static let debug = QMPRunState(rawValue: "debug")

    public var description: String { rawValue }
}

/// The reply to `query-status`.
public struct QMPStatus: Hashable, Sendable {
    /// Whether vCPUs are running.
    public let running: Bool
    public let state: QMPRunState

    init(_ value: QMPValue) throws(QMPError) {
        guard let running = value["running"]?.boolValue, let status = value["status"]?.stringValue else {
            throw .malformed("query-status reply \(value)")
        }
        self.running = running
        self.state = QMPRunState(rawValue: status)
    }
}

/// The reply to `query-version` (also in the greeting).
public struct QMPVersion: Hashable, Sendable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let micro: Int
    /// The distribution's package string, e.g. `Debian 1:7.2+dfsg-7+deb12u18+b3`.
    public let package: String

    public init(major: Int, minor: Int, micro: Int, package: String = "") {
        self.major = major
        self.minor = minor
        self.micro = micro
        self.package = package
    }

    /// Reads the first line of `qemu-system-x86_64 --version`, e.g.
    /// `QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)`; `nil` when it is not that.
    public init?(versionOutput: String) {
        let prefix = "QEMU emulator version "
        guard let line = versionOutput.split(separator: "\n").first, line.hasPrefix(prefix) else { return nil }
        let rest = line.dropFirst(prefix.count)
        let number = rest.prefix { $0 != " " }
        let parts = number.split(separator: ".").map { Int($0) }
        guard parts.count == 3, let major = parts[0], let minor = parts[1], let micro = parts[2] else { return nil }
        var package = ""
        if let open = rest.firstIndex(of: "("), let close = rest.lastIndex(of: ")"), open < close {
            package = String(rest[rest.index(after: open)..<close])
        }
        self.init(major: major, minor: minor, micro: micro, package: package)
    }

    init(_ value: QMPValue) throws(QMPError) {
        guard let qemu = value["qemu"], let major = qemu["major"]?.intValue, let minor = qemu["minor"]?.intValue,
              let micro = qemu["micro"]?.intValue else {
            throw .malformed("version \(value)")
        }
        self.major = Int(major)
        self.minor = Int(minor)
        self.micro = Int(micro)
        self.package = value["package"]?.stringValue ?? ""
    }

    public var description: String { "\(major).\(minor).\(micro)" + (package.isEmpty ? "" : " (\(package))") }
}

/// The greeting QEMU sends when a client connects.
public struct QMPGreeting: Hashable, Sendable {
    public let version: QMPVersion
    /// Capabilities QEMU offers (e.g. `oob`); the client enables none.
    public let capabilities: [String]

    init(_ value: QMPValue) throws(QMPError) {
        guard let version = value["version"] else { throw .malformed("greeting \(value)") }
        self.version = try QMPVersion(version)
        if case .array(let items) = value["capabilities"] {
            capabilities = items.compactMap(\.stringValue)
        } else {
            capabilities = []
        }
    }
}

/// Why QEMU shut down or reset (QAPI `ShutdownCause`; an open set).
public struct QMPShutdownReason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let none = QMPShutdownReason(rawValue: "none")
    public static let hostError = QMPShutdownReason(rawValue: "host-error")
    public static let hostQMPQuit = QMPShutdownReason(rawValue: "host-qmp-quit")
    public static let hostQMPSystemReset = QMPShutdownReason(rawValue: "host-qmp-system-reset")
    public static let hostSignal = QMPShutdownReason(rawValue: "host-signal")
    public static let hostUI = QMPShutdownReason(rawValue: "host-ui")
    public static let guestShutdown = QMPShutdownReason(rawValue: "guest-shutdown")
    public static let guestReset = QMPShutdownReason(rawValue: "guest-reset")
    public static let guestPanic = QMPShutdownReason(rawValue: "guest-panic")
    public static let subsystemReset = QMPShutdownReason(rawValue: "subsystem-reset")

    public var description: String { rawValue }
}

/// An asynchronous QMP event.
public struct QMPEvent: Hashable, Sendable, CustomStringConvertible {
    /// What happened, typed for the events the node acts on.
    public enum Kind: Hashable, Sendable {
        /// vCPUs stopped (`stop`, or an error/debug stop).
        case stop
        /// vCPUs resumed.
        case resume
        /// QEMU is shutting down; `guest` says whether the guest asked.
        case shutdown(guest: Bool, reason: QMPShutdownReason)
        /// The machine was reset; `guest` says whether the guest asked.
        case reset(guest: Bool, reason: QMPShutdownReason)
        /// `system_powerdown` raised the ACPI power button.
        case powerdown
        /// A device finished unplugging (`device` is its id when it had one).
        case deviceDeleted(device: String?, path: String)
        /// The guest reported a panic; `action` is what QEMU does about it.
        case guestPanicked(action: String)
        /// Any other event, by name (the raw data is in ``QMPEvent/data``).
        case other(String)
    }

    public let kind: Kind
    /// The event name as QEMU sent it, e.g. `SHUTDOWN`.
    public let name: String
    /// QEMU's host time stamp, seconds since the epoch.
    public let timestamp: Double?
    public let data: QMPValue?

    init(_ message: QMPValue) throws(QMPError) {
        guard let name = message["event"]?.stringValue else { throw .malformed("event \(message)") }
        self.name = name
        let data = message["data"]
        self.data = data
        if let stamp = message["timestamp"], let seconds = stamp["seconds"]?.numberValue,
           let micros = stamp["microseconds"]?.numberValue {
            timestamp = seconds + micros / 1_000_000
        } else {
            timestamp = nil
        }
        let guest = data?["guest"]?.boolValue ?? false
        let reason = QMPShutdownReason(rawValue: data?["reason"]?.stringValue ?? "none")
        kind = switch name {
        case "STOP": .stop
        case "RESUME": .resume
        case "SHUTDOWN": .shutdown(guest: guest, reason: reason)
        case "RESET": .reset(guest: guest, reason: reason)
        case "POWERDOWN": .powerdown
        case "DEVICE_DELETED": .deviceDeleted(device: data?["device"]?.stringValue, path: data?["path"]?.stringValue ?? "")
        case "GUEST_PANICKED": .guestPanicked(action: data?["action"]?.stringValue ?? "")
        default: .other(name)
        }
    }

    public var description: String { data.map { "\(name) \($0)" } ?? name }
}

/// One message from QEMU, classified.
enum QMPIncoming: Hashable, Sendable {
    case greeting(QMPValue)
    case event(QMPEvent)
    case reply(id: Int64?, result: Result<QMPValue, QMPReplyError>)

    init(_ message: QMPValue) throws(QMPError) {
        guard case .object = message else { throw .malformed("not a JSON object: \(message)") }
        if let greeting = message["QMP"] {
            self = .greeting(greeting)
        } else if message["event"] != nil {
            self = .event(try QMPEvent(message))
        } else if let value = message["return"] {
            self = .reply(id: message["id"]?.intValue, result: .success(value))
        } else if let error = message["error"] {
            let failure = QMPReplyError(errorClass: error["class"]?.stringValue ?? "",
                                        description: error["desc"]?.stringValue ?? "")
            self = .reply(id: message["id"]?.intValue, result: .failure(failure))
        } else {
            throw .malformed("no QMP, event, return or error member: \(message)")
        }
    }
}

/// QMP's error reply before it is tied to its command.
struct QMPReplyError: Error, Hashable, Sendable {
    let errorClass: String
    let description: String
}
