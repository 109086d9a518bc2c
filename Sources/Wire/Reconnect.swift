/// Exponential backoff with full jitter: attempt n waits a random time in
/// `[base·2ⁿ·(1-jitter), base·2ⁿ]`, capped at `maximum`.
public struct WireBackoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// Fraction of each delay that is randomized, 0…1.
    public var jitter: Double

    public init(initial: Duration = .milliseconds(200), maximum: Duration = .seconds(30),
                multiplier: Double = 2, jitter: Double = 0.5) {
        precondition(initial > .zero && maximum >= initial && multiplier >= 1 && (0...1).contains(jitter),
                     "backoff: initial > 0, maximum ≥ initial, multiplier ≥ 1, jitter in 0…1")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The wait before retry number `attempt` (0-based).
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let base = Self.seconds(initial) * pow(multiplier, Double(min(attempt, 64)))
        let capped = min(base, Self.seconds(maximum))
        let low = capped * (1 - jitter)
        let chosen = low < capped ? Double.random(in: low...capped, using: &generator) : capped
        return .nanoseconds(Int64(chosen * 1e9))
    }

    /// The wait before retry number `attempt`, with the system's random generator.
    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    private func pow(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var remaining = Int(exponent)
        while remaining > 0 && result < 1e18 {
            result *= base
            remaining -= 1
        }
        return result
    }
}

/// Keeps a link up: connects, runs `session` on each connection, and after a failure or a closed
/// connection waits with backoff and connects again, until the task is cancelled. The attempt
/// counter resets after every successful handshake.
public struct WireReconnector: Sendable {
    public var backoff: WireBackoff
    private let connect: @Sendable () async throws -> WireConnection

    /// - Parameter connect: establishes one connection (typically `WireDialer.connect`).
    public init(backoff: WireBackoff = .init(), connect: @escaping @Sendable () async throws -> WireConnection) {
        self.backoff = backoff
        self.connect = connect
    }

    /// Runs until cancelled. `onEvent` hears about each connection attempt's outcome.
    public func run(
        onEvent: @escaping @Sendable (WireReconnectEvent) -> Void = { _ in },
        session: @escaping @Sendable (WireConnection) async -> Void
    ) async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                let connection = try await connect()
                attempt = 0
                onEvent(.connected(connection.peer))
                await session(connection)
                await connection.close()
                onEvent(.disconnected(await connection.closed()))
                do { try await Task.sleep(for: backoff.delay(attempt: 0)) } catch { return }
            } catch {
                let delay = backoff.delay(attempt: attempt)
                attempt += 1
                onEvent(.failed(error, retryIn: delay))
                do { try await Task.sleep(for: delay) } catch { return }
            }
        }
    }
}

/// What a `WireReconnector` just did.
public enum WireReconnectEvent: Sendable {
    case connected(WirePeer)
    case disconnected(WireError)
    case failed(any Error, retryIn: Duration)
}
