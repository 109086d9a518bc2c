import Synchronization

/// A value set at most once and awaited by any number of tasks.
///
/// Waiters suspend without a thread; a waiter whose task is cancelled gets `nil` back at once.
public final class OneShot<Value: Sendable>: Sendable {
    private struct State: ~Copyable {
        var value: Value?
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// The value, if it has been set.
    public var current: Value? { state.withLock { $0.value } }

    /// Sets the value and wakes every waiter. Returns false (and changes nothing) if already set.
    @discardableResult
    public func set(_ value: Value) -> Bool {
        let woken: [CheckedContinuation<Value?, Never>]? = state.withLock { s in
            guard s.value == nil else { return nil }
            s.value = value
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        guard let woken else { return false }
        for waiter in woken { waiter.resume(returning: value) }
        return true
    }

    /// Waits for the value; `nil` only when the waiting task is cancelled first.
    public func wait() async -> Value? {
        let id = state.withLock { s in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
                let ready: Value?? = state.withLock { s in
                    if let value = s.value { return .some(value) }
                    if Task.isCancelled { return .some(nil) }
                    s.waiters[id] = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: nil)
        }
    }
}
