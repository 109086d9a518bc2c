import ArgumentParser
import Foundation
import LinuxSys
import NodeCore

/// `qarax-node serve`: the node daemon.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the node daemon: serve VM requests on a root-only Unix socket.",
        discussion: """
            The daemon keeps one record per VM in --state-dir and one runtime directory per running VM \
            in --runtime-dir. On start it re-adopts the VMMs a previous instance left running; on \
            SIGTERM or SIGINT it stops serving and exits, and the VMs keep running.

            Once the socket accepts requests it prints one line starting with "qarax-node ready:".

            The backend is cloud-hypervisor when its binary is found (PATH or \
            --cloud-hypervisor-binary), else QEMU; --hypervisor picks one explicitly.

            Examples:
              qarax-node serve
              qarax-node serve --hypervisor qemu --image-root /srv/images --disk-root /srv/disks
              qarax-node serve --socket /tmp/node.sock --state-dir /tmp/state --runtime-dir /tmp/run
            """
    )

    @Option(help: ArgumentHelp("The Unix socket to serve on (created mode 0600).", valueName: "path"))
    var socket = "/run/qarax/node.sock"

    @Option(help: ArgumentHelp("Durable node state (VM records, supervisor records).", valueName: "dir"))
    var stateDir = "/var/lib/qarax/node"

    @Option(help: ArgumentHelp("Per-VM runtime directories (sockets, console logs).", valueName: "dir"))
    var runtimeDir = VMRuntimeDirectory.defaultRoot

    @Option(help: ArgumentHelp("The VMM: cloud-hypervisor or qemu (default: cloud-hypervisor when found, else qemu).",
                               valueName: "name"))
    var hypervisor: String?

    @Option(help: ArgumentHelp("Use this cloud-hypervisor binary instead of searching PATH.", valueName: "path"))
    var cloudHypervisorBinary: String?

    @Option(help: ArgumentHelp("Use this qemu-system-x86_64 binary instead of searching PATH.", valueName: "path"))
    var qemuBinary: String?

    @Option(help: ArgumentHelp("A directory kernels, initramfs and firmware may come from (repeatable).", valueName: "dir"))
    var imageRoot: [String] = []

    @Option(help: ArgumentHelp("A directory disk images may come from (repeatable).", valueName: "dir"))
    var diskRoot: [String] = []

    @Option(help: ArgumentHelp("The uid (and gid) every VMM runs as.", valueName: "uid[:gid]"))
    var vmmUser = "65534:65534"

    @Option(help: ArgumentHelp("The cgroup under which each VM gets its own group.", valueName: "name"))
    var cgroupParent = "qarax"

    @Flag(help: "Reserve missing hugepages (vm.nr_hugepages) for a VM instead of refusing it.")
    var hugepagesAutoReserve = false

    @Option(help: ArgumentHelp("Make VM NICs in this named network namespace (/run/netns/NAME).", valueName: "name"))
    var networkNamespace: String?

    @Option(help: ArgumentHelp("How long a QEMU stop waits for the guest to act on the power button (0s: quit at once).",
                               valueName: "duration"))
    var qemuPowerdownGrace = "3s"

    func options() throws -> NodeDaemonOptions {
        var options = NodeDaemonOptions()
        options.socketPath = socket
        options.stateDirectory = stateDir
        options.runtimeRoot = runtimeDir
        if let hypervisor {
            switch hypervisor {
            case "cloud-hypervisor", "cloud_hypervisor": options.hypervisor = .cloudHypervisor
            case "qemu": options.hypervisor = .qemu
            default: throw ValidationError("--hypervisor \(hypervisor.debugDescription): not a VMM (cloud-hypervisor or qemu)")
            }
        }
        options.cloudHypervisorBinary = cloudHypervisorBinary
        options.qemuBinary = qemuBinary
        if !imageRoot.isEmpty { options.imageRoots = imageRoot }
        if !diskRoot.isEmpty { options.diskRoots = diskRoot }
        let ids = vmmUser.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(ids.count), let uid = UInt32(ids[0]), let gid = UInt32(ids.count == 2 ? ids[1] : ids[0]) else {
            throw ValidationError("--vmm-user \(vmmUser.debugDescription): not UID or UID:GID (numbers)")
        }
        guard uid != 0 else { throw ValidationError("--vmm-user \(vmmUser.debugDescription): VMMs never run as root") }
        options.vmmUser = UserIdentity(uid: uid, gid: gid)
        options.cgroupParent = cgroupParent
        options.hugepagesAutoReserve = hugepagesAutoReserve
        options.networkNamespace = networkNamespace.map(NetworkNamespace.named)
        do { options.qemuPowerdownGrace = try NodeOutput.duration(qemuPowerdownGrace, flag: "--qemu-powerdown-grace") } catch {
            throw ValidationError(error.description)
        }
        return options
    }

    func run() async throws {
        let options = try options()
        do {
            try await NodeDaemon.run(options) { line in
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            }
        } catch {
            FileHandle.standardError.write(Data("qarax-node serve: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
