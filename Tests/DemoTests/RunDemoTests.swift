import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

private func onPath(_ name: String) -> Bool {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").contains { access("\($0)/\(name)", X_OK) == 0 }
}

private let canRunDemo = getuid() == 0 && access("/dev/kvm", R_OK | W_OK) == 0
    && (onPath("cloud-hypervisor") || onPath("qemu-system-x86_64"))

/// `scripts/run-demo` end to end with the debug binaries: the real qarax-control and qarax-node
/// over mutual TLS, a real tiny guest booted, stopped and deleted through the CLI.
@Suite("The one-machine demo", .serialized)
struct RunDemoTests {
    @Test(.enabled(if: canRunDemo, "needs root, /dev/kvm and cloud-hypervisor or qemu-system-x86_64"))
    func runDemoSucceedsAndLeavesNothingRunning() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: repositoryRoot + "/scripts/run-demo")
        process.currentDirectoryURL = URL(fileURLWithPath: repositoryRoot)
        var environment = ProcessInfo.processInfo.environment
        environment["QARAX_BUILD"] = "debug"
        process.environment = environment
        let logPath = NSTemporaryDirectory() + "qarax-run-demo-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: logPath) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        let (exited, exit) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { finished in
            exit.yield(finished.terminationStatus)
            exit.finish()
        }
        try process.run()
        let deadline = Task {
            try await Task.sleep(for: .seconds(600))  // allowed: deadline timer, not a wait
            kill(process.processIdentifier, SIGTERM)
        }
        defer { deadline.cancel() }
        var status: Int32?
        for await value in exited { status = value }
        try log.close()
        let output = String(decoding: FileManager.default.contents(atPath: logPath) ?? Data(), as: UTF8.self)
        #expect(status == 0, "run-demo failed:\n\(output)")
        #expect(output.contains("QARAX-GUEST-READY"))
        #expect(output.contains("demo is deleted"))
        #expect(output.contains("run-demo: OK"))
        // Nothing left running: no daemon or VMM started from the demo's temporary directory.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { pid -> String? in
            guard Int32(pid) != nil,
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let text = String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return text.contains("/tmp/qarax-demo.") ? "\(pid): \(text)" : nil
        }
        #expect(leftovers.isEmpty, "still running: \(leftovers)")
    }
}
