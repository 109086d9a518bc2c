import ArgumentParser
import Foundation
import LinuxSys
import NodeCore
import Wire

/// `qarax-node serve`: the node daemon.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the node daemon: serve VM requests on a root-only Unix socket.",
        discussion: """
            The daemon keeps one record per VM in --state-dir and one runtime directory per running VM \
            in --runtime-dir. On start it re-adopts the VMMs a previous instance left running; on \
            SIGTERM or SIGINT it stops serving and exits, and the VMs keep running.

            Once the socket accepts requests it prints one line starting with "qarax-node ready:".

            With --control HOST:PORT the node also attaches to qarax-control over the Wire protocol \
            with mutual TLS: --tls-dir holds the cluster CA (ca.pem) and this node's certificate and \
            key (NAME.pem, NAME-key.pem; `qarax-control pki issue-node NAME --dir DIR`), NAME being \
            --name (default: the host name). It reconnects with backoff after any failure, reports \
            its inventory and all its VMs on every connect, and carries out the VM operations the \
            control daemon sends. --insecure dials in plaintext instead (test beds only; logged loudly).

            The backend is cloud-hypervisor when its binary is found (PATH or \
            --cloud-hypervisor-binary), else QEMU; --hypervisor picks one explicitly.

            Examples:
              qarax-node serve
              qarax-node serve --hypervisor qemu --image-root /srv/images --disk-root /srv/disks
              qarax-node serve --socket /tmp/node.sock --state-dir /tmp/state --runtime-dir /tmp/run
              qarax-node serve --control control.example:7701 --tls-dir /etc/qarax/pki --name node-1
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

    @Option(help: ArgumentHelp("Attach to the control daemon's node port.", valueName: "host:port"))
    var control: String?

    @Option(help: ArgumentHelp("Directory of ca.pem, NAME.pem and NAME-key.pem for the control link.", valueName: "dir"))
    var tlsDir: String?

    @Flag(help: "Dial the control daemon in plaintext, unauthenticated (test beds only; logged loudly).")
    var insecure = false

    @Option(help: ArgumentHelp("This node's name towards the control daemon (default: the host name).", valueName: "name"))
    var name: String?

    @Option(help: ArgumentHelp("How often resources and VM states are reported to the control daemon.", valueName: "duration"))
    var reportInterval = "5s"

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
        if let control {
            guard let colon = control.lastIndex(of: ":"), let port = Int(control[control.index(after: colon)...]),
                  (1...65535).contains(port), colon > control.startIndex else {
                throw ValidationError("--control \(control.debugDescription): not HOST:PORT")
            }
            var host = String(control[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            let nodeName = name ?? ProcessInfo.processInfo.hostName
            let security: WireSecurity
            switch (tlsDir, insecure) {
            case (let dir?, false):
                let files = WireTLSFiles(directory: dir, name: nodeName)
                for path in [files.caCertificatePath, files.certificatePath, files.privateKeyPath]
                where !FileManager.default.isReadableFile(atPath: path) {
                    throw ValidationError("--tls-dir \(dir): \(path) is missing or unreadable "
                                          + "(`qarax-control pki issue-node \(nodeName) --dir DIR` makes it)")
                }
                security = .mutualTLS(files)
            case (nil, true): security = .insecurePlaintext
            case (_?, true): throw ValidationError("--tls-dir and --insecure exclude each other")
            case (nil, false): throw ValidationError("--control needs --tls-dir DIR (mutual TLS) or --insecure")
            }
            var agent = NodeAgentConfiguration(endpoint: .tcp(host: host, port: port), security: security, name: nodeName)
            do { agent.reportInterval = try NodeOutput.duration(reportInterval, flag: "--report-interval") } catch {
                throw ValidationError(error.description)
            }
            options.control = agent
        } else if tlsDir != nil || insecure || name != nil {
            throw ValidationError("--tls-dir, --insecure and --name need --control HOST:PORT")
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
