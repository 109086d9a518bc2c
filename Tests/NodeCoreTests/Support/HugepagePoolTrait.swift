import Foundation
import Glibc
import Testing

/// Tests that change the host's hugepage pool (`nr_hugepages`) or count its free pages exactly
/// must not overlap: Swift Testing runs suites in parallel, and one test's reservation would be
/// another's shortage. `.hugepagePool` runs the test (or the whole suite) while holding one
/// process-wide lock; waiters queue in order and are resumed, never polled. The holder also takes
/// an exclusive `flock` on a fixed file, so test runs in other processes (another checkout's
/// suite on the same machine) do not overlap either.
struct HugepagePoolTrait: TestTrait, SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        await HugepagePoolLock.shared.acquire()
        let machineLock = await MachineWideLock.acquire(path: "/run/lock/qarax-tests-hugepages.lock")
        do {
            try await function()
        } catch {
            machineLock.map { _ = close($0) }
            await HugepagePoolLock.shared.release()
            throw error
        }
        machineLock.map { _ = close($0) }
        await HugepagePoolLock.shared.release()
    }
}

extension Trait where Self == HugepagePoolTrait {
    /// Holds the host hugepage pool exclusively for the test or suite.
    static var hugepagePool: Self { HugepagePoolTrait() }
}

actor HugepagePoolLock {
    static let shared = HugepagePoolLock()

    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !held {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            held = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}

/// An exclusive `flock` on a file, taken on a thread of its own (it blocks) and released by
/// closing the returned descriptor. Nil when the file cannot be opened (then only the
/// in-process lock applies).
enum MachineWideLock {
    static func acquire(path: String) async -> Int32? {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread {
                while flock(fd, LOCK_EX) < 0 && errno == EINTR {}
                done.resume()
            }.start()
        }
        return fd
    }
}
