import LinuxSys
#if canImport(Glibc)
import Glibc
#endif

/// Writes all of `bytes` to `fd`, retrying short writes; false when the descriptor failed.
@discardableResult
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { raw in
            Glibc.write(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset)
        }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += n
    }
    return true
}

/// The simulator's log: stderr, or `--log-file`.
struct SimLog {
    let fd: Int32
    let verbosity: Int

    func info(_ message: String) { write("INFO", message) }
    func debug(_ message: String) { if verbosity > 0 { write("DEBUG", message) } }

    private func write(_ level: String, _ message: String) {
        writeAll(fd, Array("ch-sim[\(getpid())] \(level): \(message)\n".utf8))
    }
}

/// cloud-hypervisor's `--event-monitor` output: one pretty-printed JSON object per event
/// (serde's two-space layout), each followed by a blank line; timestamps relative to VMM start.
struct EventMonitor {
    let fd: Int32?
    let start: ContinuousClock.Instant

    func emit(_ event: SimulatedVMM.Event) {
        guard let fd else { return }
        writeAll(fd, Array(Self.format(event, at: ContinuousClock.now - start).utf8))
    }

    static func format(_ event: SimulatedVMM.Event, at elapsed: Duration) -> String {
        let (seconds, attoseconds) = elapsed.components
        var text = "{\n"
            + "  \"timestamp\": {\n"
            + "    \"secs\": \(seconds),\n"
            + "    \"nanos\": \(attoseconds / 1_000_000_000)\n"
            + "  },\n"
            + "  \"source\": \(quoted(event.source)),\n"
            + "  \"event\": \(quoted(event.event)),\n"
            + "  \"properties\": "
        if let properties = event.properties, !properties.isEmpty {
            text += "{\n"
            text += properties.sorted { $0.key < $1.key }
                .map { "    \(quoted($0.key)): \(quoted($0.value))" }
                .joined(separator: ",\n")
            text += "\n  }"
        } else {
            text += "null"
        }
        return text + "\n}\n\n"
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Where the simulated guest's serial port goes, from the VM config's `serial` (default `Null`).
enum SerialPort {
    case discard
    case descriptor(Int32)
    /// `Socket` mode: the VMM listens; output waits for the first client.
    case socket(listener: Int32, path: String)

    static func open(config: SimJSON?, log: SimLog) -> SerialPort {
        let mode = config?["mode"]?.stringValue ?? "Null"
        switch mode {
        case "Tty":
            return .descriptor(STDOUT_FILENO)
        case "File":
            guard let path = config?["file"]?.stringValue else { return .discard }
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            if fd < 0 {
                log.info("serial file \(path): errno \(errno)")
                return .discard
            }
            return .descriptor(fd)
        case "Socket":
            guard let path = config?["socket"]?.stringValue else { return .discard }
            _ = unlink(path)
            do {
                let listener = try UnixSocket.listen(path: path, backlog: 1)
                return .socket(listener: listener.take(), path: path)
            } catch {
                log.info("serial socket \(path): \(error)")
                return .discard
            }
        default:
            return .discard
        }
    }
}
