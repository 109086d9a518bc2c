import LinuxSys
import Testing
@testable import NetPlumbing
#if canImport(Glibc)
import Glibc
#endif

/// Privileged tests need root (network namespaces, /dev/net/tun, mknod).
let isRoot = getuid() == 0
let rootReason: Comment = "needs root: creates network namespaces, TAPs and device nodes"

/// A name nobody else uses, e.g. `qxt-3f9a01c2`.
func uniqueName(_ prefix: String = "qxt") -> String {
    let value = UInt32.random(in: 0...UInt32.max)
    let hex = String(value, radix: 16)
    return prefix + "-" + String(repeating: "0", count: 8 - hex.count) + hex
}

/// Runs `body` in a freshly created network namespace, deleted afterwards even when `body` throws.
@discardableResult
func withScratchNamespace<T>(_ body: (NetworkNamespace) async throws -> T) async throws -> T {
    let name = uniqueName()
    let namespace = try await NetworkNamespace.create(named: name)
    defer { try? NetworkNamespace.delete(named: name) }
    return try await body(namespace)
}

/// Runs `body` with a fresh empty directory, removed afterwards with everything in it.
@discardableResult
func withScratchDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    var template = Array("/tmp/qxt-dev-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { buffer -> Bool in
        guard let base = buffer.baseAddress else { return false }
        return mkdtemp(base) != nil
    }
    #expect(made)
    let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    defer { removeTree(path) }
    return try await body(path)
}

func removeTree(_ path: String) {
    if let dir = opendir(path) {
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            _ = unlink(path + "/" + name)
        }
        closedir(dir)
    }
    _ = rmdir(path)
}

/// A sysfs attribute of `link` as that namespace's kernel shows it, trimmed.
func sysfs(_ link: String, _ attribute: String, in namespace: NetworkNamespace) async throws -> String {
    try await namespace.perform {
        let text = try readProcFile("/sys/class/net/\(link)/\(attribute)")
        return String(text.filter { $0 != "\n" })
    }
}

let plumbing = NetPlumbing()

func tag(_ vm: String, _ nic: String = "0") throws -> LinkTag { try LinkTag(vm: vm, nic: nic) }

/// Runs `ip args…` (tests only, to act from outside qarax) and returns its exit status.
func runIP(_ args: [String]) -> Int32 {
    var cArgs: [UnsafeMutablePointer<CChar>?] = (["ip"] + args).map { strdup($0) } + [nil]
    defer { for arg in cArgs { free(arg) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, "/usr/sbin/ip", nil, nil, &cArgs, environ) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return status
}

/// Awaits `condition` until it holds or `seconds` pass; returns whether it held.
func eventually(within seconds: Int = 5, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        await Task.yield()
    }
}
