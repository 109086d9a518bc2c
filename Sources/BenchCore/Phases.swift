import Foundation
import Synchronization

/// The points of one boot, in the order they happen; each is an offset from ``requestReceived``.
public enum BootPoint: String, CaseIterable, Codable, Sendable, Hashable {
    case requestReceived = "request_received"
    case specValidated = "spec_validated"
    case hostPrepared = "host_prepared"
    case launchPlanned = "launch_planned"
    case vmmSpawned = "vmm_spawned"
    case supervised
    case apiReady = "api_ready"
    case created
    case bootReturned = "boot_returned"
    case guestBooted = "guest_booted"
    case debugPort = "debug_port"
    case readyMarker = "ready_marker"
    case shutdownComplete = "shutdown_complete"

    /// The point's position in a boot.
    public var order: Int { Self.allCases.firstIndex(of: self) ?? 0 }
}

/// One timed boot: the offset of every point it reached, in milliseconds from the request.
public struct BootSample: Codable, Sendable, Hashable {
    public var points: [BootPoint: Double]
    /// CPU time of the node (this process) spent on this boot, when measured per boot.
    public var nodeCPUMilliseconds: Double?

    public init(points: [BootPoint: Double] = [:], nodeCPUMilliseconds: Double? = nil) {
        self.points = points
        self.nodeCPUMilliseconds = nodeCPUMilliseconds
    }

    /// Request to guest ready marker: the boot time.
    public var bootMilliseconds: Double? { points[.readyMarker] }

    /// Phases as (name, duration): the reached points in time order (ties in ``BootPoint`` order),
    /// each minus the one before, so the phases add up to the last point's offset. A phase is named
    /// after the point that ends it. The VMM's own observations (``guestBooted``, ``debugPort``,
    /// ``readyMarker``) can come before the boot call's answer reaches the node.
    public var phases: [(BootPoint, Double)] {
        let reached = points.filter { $0.key != .requestReceived }
            .sorted { $0.value != $1.value ? $0.value < $1.value : $0.key.order < $1.key.order }
        var result: [(BootPoint, Double)] = []
        var previous = 0.0
        for (point, at) in reached {
            result.append((point, at - previous))
            previous = at
        }
        return result
    }

    /// The node's own steps, which happen one after another.
    public static let sequence: [BootPoint] = [.requestReceived, .specValidated, .hostPrepared, .launchPlanned, .vmmSpawned,
                                               .supervised, .apiReady,
                                               .created, .bootReturned, .shutdownComplete]
    /// What the VMM or the guest reports: after the spawn, before the shutdown completes.
    public static let observations: [BootPoint] = [.guestBooted, .debugPort, .readyMarker]

    /// Points that break the order of a boot: a node step before the step preceding it, or an
    /// observation before the VMM's spawn or after its shutdown. Empty for a consistent sample.
    /// A guest that powers off at once ends the VMM while the answer to `vm.boot` may still be on
    /// its way to the node, so the shutdown only has to follow the steps before that answer.
    public var outOfOrder: [BootPoint] {
        var bad: [BootPoint] = []
        var previous = -Double.infinity
        var beforeBootAnswer = -Double.infinity
        for point in Self.sequence {
            guard let at = points[point] else { continue }
            if at < (point == .shutdownComplete ? beforeBootAnswer : previous) { bad.append(point) }
            previous = max(previous, at)
            if point != .bootReturned { beforeBootAnswer = max(beforeBootAnswer, at) }
        }
        let spawned = points[.vmmSpawned] ?? 0
        let end = points[.shutdownComplete] ?? .infinity
        for point in Self.observations {
            guard let at = points[point] else { continue }
            if at < spawned || at > end { bad.append(point) }
        }
        return bad
    }
}

/// Records the points of concurrent boots against one monotonic clock (thread-safe).
public final class BootTimeline: Sendable {
    private let start: ContinuousClock.Instant
    private let recorded: Synchronization.Mutex<[BootPoint: Double]>

    public init(start: ContinuousClock.Instant = .now) {
        self.start = start
        recorded = Synchronization.Mutex([.requestReceived: 0])
    }

    /// Records `point` now; a point already recorded keeps its first time.
    public func mark(_ point: BootPoint, at instant: ContinuousClock.Instant = .now) {
        let ms = Self.milliseconds(instant - start)
        recorded.withLock { if $0[point] == nil { $0[point] = ms } }
    }

    /// Records `point` at an offset from the start.
    public func mark(_ point: BootPoint, offsetMilliseconds ms: Double) {
        recorded.withLock { if $0[point] == nil { $0[point] = ms } }
    }

    public func offset(of point: BootPoint) -> Double? { recorded.withLock { $0[point] } }

    public var sample: BootSample { BootSample(points: recorded.withLock { $0 }) }

    public static func milliseconds(_ duration: Duration) -> Double {
        let (s, attos) = duration.components
        return Double(s) * 1000 + Double(attos) / 1e15
    }
}

/// Finds a marker in a byte stream that arrives in chunks (the marker may straddle two).
public struct MarkerScanner: Sendable {
    public let marker: [UInt8]
    private var tail: [UInt8] = []
    public private(set) var found = false

    public init(_ marker: String) { self.marker = Array(marker.utf8) }

    /// Feeds bytes; returns true the first time the marker is complete.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !found else { return false }
        var window = tail
        window.append(contentsOf: bytes)
        if window.count >= marker.count {
            for i in 0...(window.count - marker.count) where window[i] == marker[0] {
                if window[i..<(i + marker.count)].elementsEqual(marker) {
                    found = true
                    tail = []
                    return true
                }
            }
        }
        tail = Array(window.suffix(max(0, marker.count - 1)))
        return false
    }
}

/// Reads cloud-hypervisor's debug-port log lines (`[… code 0x1] 0.004961 seconds`, time since the
/// VMM started) from its log; the first write's offset in seconds, or nil.
public enum DebugPortLog {
    public static func firstWriteSeconds(in log: String) -> Double? {
        for line in log.split(separator: "\n") where line.contains(" code 0x") && line.hasSuffix(" seconds") {
            guard let close = line.lastIndex(of: "]") else { continue }
            let rest = line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)
            if let number = rest.split(separator: " ").first, let seconds = Double(number) { return seconds }
        }
        return nil
    }
}
