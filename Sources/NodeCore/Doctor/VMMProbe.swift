#if canImport(Glibc)
import Glibc
#endif
import LinuxSys

/// The VMMs qarax can drive.
public enum VMMKind: String, CaseIterable, Sendable {
    case cloudHypervisor = "cloud_hypervisor"
    case qemu

    /// The executable's name looked up on PATH.
    public var binaryName: String {
        switch self {
        case .cloudHypervisor: "cloud-hypervisor"
        case .qemu: "qemu-system-x86_64"
        }
    }

    /// The command-line flag that names the binary explicitly.
    public var flag: String {
        switch self {
        case .cloudHypervisor: "--cloud-hypervisor-binary"
        case .qemu: "--qemu-binary"
        }
    }

    var check: DoctorCheck {
        switch self {
        case .cloudHypervisor: .cloudHypervisor
        case .qemu: .qemu
        }
    }

    /// How to get the VMM.
    var packageHint: String {
        switch self {
        case .cloudHypervisor: "install cloud-hypervisor from https://github.com/cloud-hypervisor/cloud-hypervisor/releases"
        case .qemu: "apt-get install qemu-system-x86"
        }
    }

    var installHint: String { "\(packageHint) into PATH, or pass \(flag) PATH" }

    /// The fix when the binary named by the flag is unusable.
    var flagHint: String { "point \(flag) at a working \(binaryName) (\(packageHint)), or drop the flag to search PATH" }

    /// The version in `--version` output: `cloud-hypervisor v52.0` → `52.0`,
    /// `QEMU emulator version 7.2.19 (Debian …)` → `7.2.19`.
    public func parseVersion(_ output: String) -> String? {
        for line in output.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ")
            switch self {
            case .cloudHypervisor:
                guard words.first == "cloud-hypervisor", words.count >= 2 else { continue }
                let token = words[1].hasPrefix("v") ? words[1].dropFirst() : words[1]
                if Self.looksLikeVersion(token) { return String(token) }
            case .qemu:
                guard let i = words.firstIndex(of: "version"), i > 0, words[i - 1] == "emulator",
                      i + 1 < words.count, Self.looksLikeVersion(words[i + 1]) else { continue }
                return String(words[i + 1])
            }
        }
        return nil
    }

    private static func looksLikeVersion(_ token: Substring) -> Bool {
        guard let first = token.first, first.isNumber else { return false }
        return token.contains(".")
    }
}

/// Finds a VMM binary and asks it for its version.
public enum VMMProbe {
    /// The first executable file named `name` in the `:`-separated `searchPath`.
    public static func find(_ name: String, searchPath: String) -> String? {
        for dir in searchPath.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    static func isExecutableFile(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }

    /// Checks one VMM: the binary named by its flag (`explicitPath`) or found on `searchPath`,
    /// and its `--version` answer within `timeout`.
    public static func check(_ kind: VMMKind, explicitPath: String?, searchPath: String,
                             timeout: Duration) -> CheckResult {
        let source = explicitPath == nil ? "PATH" : kind.flag
        guard let path = explicitPath ?? find(kind.binaryName, searchPath: searchPath) else {
            return CheckResult(kind.check, passed: false, summary: "\(kind.binaryName) not found on PATH",
                               fix: kind.installHint, details: ["explicit": .bool(false)])
        }
        var details: [String: DoctorValue] = ["path": .string(path), "explicit": .bool(explicitPath != nil)]
        guard isExecutableFile(path) else {
            let reason = access(path, F_OK) == 0 ? "is not an executable file" : "does not exist"
            return CheckResult(kind.check, passed: false, summary: "\(source) \(path) \(reason)",
                               fix: kind.flagHint,
                               details: details)
        }
        let output: BoundedCommand.Output
        do {
            output = try BoundedCommand.run(path, arguments: ["--version"], timeout: timeout)
        } catch {
            return CheckResult(kind.check, passed: false, summary: "\(path) --version could not run: \(error)",
                               fix: "check that \(path) is a working \(kind.binaryName) for this machine", details: details)
        }
        guard output.termination == .exited(0), let version = kind.parseVersion(output.text) else {
            let firstLine = output.text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            return CheckResult(kind.check, passed: false,
                               summary: "\(path) --version gave \(output.termination) '\(firstLine)', no version",
                               fix: "check that \(path) is a working \(kind.binaryName) for this machine", details: details)
        }
        details["version"] = .string(version)
        return CheckResult(kind.check, passed: true, summary: "\(path) version \(version)", details: details)
    }

    /// The `vmm` check: at least one VMM works, and none named by a flag is broken.
    public static func aggregate(_ results: [CheckResult], explicit: Set<DoctorCheck>) -> CheckResult {
        let working = results.filter(\.passed).map(\.check.key)
        let brokenExplicit = results.filter { !$0.passed && explicit.contains($0.check) }
        if let broken = brokenExplicit.first {
            return CheckResult(.vmm, passed: false, summary: "the VMM named by a flag is unusable: \(broken.summary)",
                               fix: broken.fix, details: ["working": .array(working.map { .string($0) })])
        }
        if working.isEmpty {
            return CheckResult(.vmm, passed: false, summary: "no VMM found (cloud-hypervisor or qemu-system-x86_64)",
                               fix: "\(VMMKind.qemu.installHint); or \(VMMKind.cloudHypervisor.installHint)",
                               details: ["working": .array([])])
        }
        return CheckResult(.vmm, passed: true, summary: "usable: " + working.joined(separator: ", "),
                           details: ["working": .array(working.map { .string($0) })])
    }
}
