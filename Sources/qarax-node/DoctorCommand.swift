import ArgumentParser
import NodeCore

/// `qarax-node doctor`: checks whether this host can run VMs.
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check whether this host can run qarax VMs and say how to fix what is missing.",
        discussion: """
            Prints one line per check: ✓ passed, ✗ a required check failed, ! an optional one failed; \
            every failure has a fix line. Exits 0 only when every required check passes.

            Checks (required unless marked optional):
            \(DoctorCheck.allCases.map { "- \($0.key)\($0.isRequired ? "" : " (optional)"): \($0.meaning)" }.joined(separator: "\n"))

            With --json, prints one JSON object: "ready", one boolean per check name above, \
            "details" (versions, cgroup controllers, hugepage counts…) and "checks" (summary and fix \
            of each).
            """
    )

    @Flag(help: "Print a single JSON object instead of the text report.")
    var json = false

    @Option(help: ArgumentHelp("Use this cloud-hypervisor binary instead of searching PATH.", valueName: "path"))
    var cloudHypervisorBinary: String?

    @Option(help: ArgumentHelp("Use this qemu-system-x86_64 binary instead of searching PATH.", valueName: "path"))
    var qemuBinary: String?

    @Option(help: ArgumentHelp("Seconds a VMM may take to answer --version.", valueName: "seconds"))
    var versionTimeout: Int = 5

    func validate() throws {
        guard (1...60).contains(versionTimeout) else {
            throw ValidationError("--version-timeout: \(versionTimeout) is outside 1…60 seconds")
        }
    }

    func run() throws {
        let report = HostDoctor.run(HostDoctor.Options(
            cloudHypervisorBinary: cloudHypervisorBinary, qemuBinary: qemuBinary,
            versionTimeout: .seconds(versionTimeout)))
        print(json ? try DoctorRenderer.json(report) : DoctorRenderer.text(report), terminator: "")
        if !report.ready { throw ExitCode(1) }
    }
}
