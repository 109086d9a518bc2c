import CloudHypervisorAPI
import Foundation

/// One event from cloud-hypervisor's `--event-monitor` stream.
public struct CHEvent: Sendable, Equatable {
    /// Time since the VMM started.
    public var timestamp: Duration
    /// `vmm`, `vm`, `virtio-device`, `guest`…
    public var source: String
    /// The event's name within its source, e.g. `booted`.
    public var event: String
    public var kind: Kind
    /// Event details (e.g. `id` of an activated device); empty when CH sent `null`.
    public var properties: [String: String]

    public init(timestamp: Duration, source: String, event: String, properties: [String: String] = [:]) {
        self.timestamp = timestamp
        self.source = source
        self.event = event
        self.kind = Kind(source: source, event: event)
        self.properties = properties
    }

    /// The events the node acts on; anything else is `.other("source/event")`.
    public enum Kind: Sendable, Hashable {
        case vmmStarting, vmmShutdown
        case vmBooting, vmBooted, vmPausing, vmPaused, vmResuming, vmResumed
        case vmShutdown, vmDeleted, vmRebooting, vmRebooted
        case deviceActivated, guestPanic
        case other(String)

        public init(source: String, event: String) {
            switch (source, event) {
            case ("vmm", "starting"): self = .vmmStarting
            case ("vmm", "shutdown"): self = .vmmShutdown
            case ("vm", "booting"): self = .vmBooting
            case ("vm", "booted"): self = .vmBooted
            case ("vm", "pausing"): self = .vmPausing
            case ("vm", "paused"): self = .vmPaused
            case ("vm", "resuming"): self = .vmResuming
            case ("vm", "resumed"): self = .vmResumed
            case ("vm", "shutdown"): self = .vmShutdown
            case ("vm", "deleted"): self = .vmDeleted
            case ("vm", "rebooting"): self = .vmRebooting
            case ("vm", "rebooted"): self = .vmRebooted
            case ("virtio-device", "activated"): self = .deviceActivated
            case ("guest", "panic"): self = .guestPanic
            default: self = .other("\(source)/\(event)")
            }
        }
    }
}

/// Why the event stream could not be parsed.
public enum CHEventStreamError: Error, Equatable, Sendable, CustomStringConvertible {
    /// One object grew past the parser's cap before it closed.
    case objectTooLarge(limit: Int)
    /// A byte outside any object that is neither whitespace nor `{`.
    case unexpectedByte(UInt8, offset: Int)
    /// A complete object that is not a valid event.
    case invalidEvent(reason: String, text: String)
    /// The stream ended inside an object.
    case truncated(bytes: Int)

    public var description: String {
        switch self {
        case .objectTooLarge(let limit): "event stream: an event is larger than \(limit) bytes"
        case .unexpectedByte(let byte, let offset): "event stream: unexpected byte 0x\(String(byte, radix: 16)) at offset \(offset)"
        case .invalidEvent(let reason, let text): "event stream: invalid event (\(reason)): \(text.prefix(200))"
        case .truncated(let bytes): "event stream: ended inside an event (\(bytes) bytes pending)"
        }
    }
}

/// Incremental parser of cloud-hypervisor's event stream: pretty-printed JSON objects spread over
/// several lines and separated by blank lines (not one object per line).
///
/// Feed it chunks cut anywhere; a scanner that knows strings and escapes finds where each
/// top-level object ends, then `JSONDecoder` decodes it. One object may not exceed `maxEventBytes`,
/// so a misbehaving VMM cannot make the node buffer without bound. After an error the stream is
/// out of step: discard the parser (and treat the VMM as misbehaving).
public struct CHEventParser: Sendable {
    public let maxEventBytes: Int
    private var pending: [UInt8] = []
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var consumed = 0

    public init(maxEventBytes: Int = 64 * 1024) {
        self.maxEventBytes = maxEventBytes
    }

    /// Consumes `bytes` and returns the events they complete, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(CHEventStreamError) -> [CHEvent] {
        var events: [CHEvent] = []
        for byte in bytes {
            defer { consumed += 1 }
            if depth == 0 {
                switch byte {
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                    continue
                case UInt8(ascii: "{"):
                    depth = 1
                    pending = [byte]
                    continue
                default:
                    throw .unexpectedByte(byte, offset: consumed)
                }
            }
            pending.append(byte)
            if pending.count > maxEventBytes { throw .objectTooLarge(limit: maxEventBytes) }
            if inString {
                if escaped { escaped = false }
                else if byte == UInt8(ascii: "\\") { escaped = true }
                else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 {
                    events.append(try Self.decode(pending))
                    pending = []
                }
            default: break
            }
        }
        return events
    }

    /// Checks that the stream ended between events.
    public func finish() throws(CHEventStreamError) {
        if depth != 0 { throw .truncated(bytes: pending.count) }
    }

    /// One event object: `{"timestamp":{"secs":…,"nanos":…},"source":…,"event":…,"properties":…}`,
    /// other keys ignored. Parsed into a ``JSONValue`` and read field by field (a `Decodable` pass
    /// through `JSONDecoder` cost the node more CPU than the rest of the event path).
    private static func decode(_ bytes: [UInt8]) throws(CHEventStreamError) -> CHEvent {
        func invalid(_ reason: String) -> CHEventStreamError {
            .invalidEvent(reason: reason, text: String(decoding: bytes, as: UTF8.self))
        }
        let value: JSONValue
        do { value = try JSONValue(json: Data(bytes)) } catch { throw invalid(error.description) }
        guard case .object(let object) = value else { throw invalid("an event is a JSON object") }
        guard case .object(let stamp)? = object["timestamp"] else { throw invalid("timestamp: missing or not an object") }
        guard let secs = stamp["secs"].flatMap(unsigned) else { throw invalid("timestamp.secs: missing or not an unsigned integer") }
        guard let nanos = stamp["nanos"].flatMap(unsigned), nanos <= UInt64(UInt32.max) else {
            throw invalid("timestamp.nanos: missing or not a 32-bit unsigned integer")
        }
        guard case .string(let source)? = object["source"] else { throw invalid("source: missing or not a string") }
        guard case .string(let event)? = object["event"] else { throw invalid("event: missing or not a string") }
        var properties: [String: String] = [:]
        switch object["properties"] {
        case nil, .null?: break
        case .object(let fields)?:
            for (key, field) in fields {
                // CH sends strings; numbers and booleans are kept as their text.
                switch field {
                case .string(let text): properties[key] = text
                case .integer(let number): properties[key] = String(number)
                case .unsignedInteger(let number): properties[key] = String(number)
                case .double(let number): properties[key] = String(number)
                case .bool(let flag): properties[key] = String(flag)
                case .null: properties[key] = ""
                case .array, .object: throw invalid("properties.\(key): property value is not a scalar")
                }
            }
        case .some: throw invalid("properties: not an object")
        }
        let timestamp = Duration.seconds(Int64(clamping: secs)) + .nanoseconds(Int64(nanos))
        return CHEvent(timestamp: timestamp, source: source, event: event, properties: properties)
    }

    private static func unsigned(_ value: JSONValue) -> UInt64? {
        switch value {
        case .integer(let number) where number >= 0: UInt64(number)
        case .unsignedInteger(let number): number
        default: nil
        }
    }
}
