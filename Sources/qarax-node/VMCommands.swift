import ArgumentParser
import Foundation
import NodeCore
import VMModel

/// `qarax-node vm …`: talks to a running `qarax-node serve`.
struct VM: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create and operate VMs on this node (through the daemon's socket).",
        discussion: """
            Every subcommand talks to `qarax-node serve` on --socket (default /run/qarax/node.sock).

            Examples:
              qarax-node vm create --name web1 --vcpus 2 --memory 512M \\
                  --kernel /srv/images/vmlinux --cmdline console=ttyS0 \\
                  --net tap,mtu=9000 --disk /srv/disks/web1.raw
              qarax-node vm create --spec web1.json
              qarax-node vm start web1
              qarax-node vm list
              qarax-node vm info web1 -o json
              qarax-node vm console web1 --follow
              qarax-node vm run --name probe --kernel /srv/images/tiny-pvh.elf \\
                  --wait-for-console QARAX-GUEST-READY --timeout 30s
              qarax-node vm delete web1
            """,
        subcommands: [VMCreate.self, VMRun.self, VMStart.self, VMStop.self, VMPause.self, VMResume.self, VMReboot.self,
                      VMPowerButton.self, VMDelete.self, VMInfo.self, VMList.self, VMConsole.self]
    )
}

struct SocketOption: ParsableArguments {
    @Option(help: ArgumentHelp("The node daemon's socket.", valueName: "path"))
    var socket = "/run/qarax/node.sock"

    var client: NodeClient { NodeClient(socketPath: socket) }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// Sends `request`; prints the node's refusal (with field paths) and fails on error.
func exchange(_ client: NodeClient, _ request: NodeRequest) throws -> NodeResponse {
    let response: NodeResponse
    do {
        response = try client.send(request)
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(2)
    }
    if case .error(let error) = response {
        FileHandle.standardError.write(Data((NodeOutput.error(error) + "\n").utf8))
        throw ExitCode(1)
    }
    return response
}

func printVM(_ response: NodeResponse, _ output: OutputFormat) {
    guard case .vm(let report) = response else { return }
    print(output == .json ? NodeOutput.json(report) : NodeOutput.details(report), terminator: output == .json ? "\n" : "")
}

/// The flags that describe a VM (`vm create`, `vm run`).
struct VMSpecOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A VM specification in JSON (snake_case keys); the other spec flags must then be absent.",
                               valueName: "file"))
    var spec: String?

    @Option(help: "The VM's name (1-64 of A-Z a-z 0-9 . _ -).")
    var name: String?

    @Option(help: "vCPUs at boot.")
    var vcpus = 1

    @Option(help: ArgumentHelp("Guest memory: 256M, 1G, 1GiB…", valueName: "size"))
    var memory = "256M"

    @Option(help: ArgumentHelp("The guest kernel (under an --image-root of the node).", valueName: "path"))
    var kernel: String?

    @Option(help: ArgumentHelp("The initramfs.", valueName: "path"))
    var initramfs: String?

    @Option(help: ArgumentHelp("The kernel command line.", valueName: "text"))
    var cmdline: String?

    @Option(help: ArgumentHelp("tap[,mtu=9000][,mac=..][,bridge=..][,queues=N] or macvtap,parent=IF[,mode=bridge] (repeatable).",
                               valueName: "nic"))
    var net: [String] = []

    @Option(help: ArgumentHelp("PATH[,readonly][,direct] (repeatable; under a --disk-root of the node).", valueName: "disk"))
    var disk: [String] = []

    @Option(help: ArgumentHelp("Back guest memory with hugepages of this size: 2M or 1G.", valueName: "size"))
    var hugepages: String?

    func vmSpec() throws -> VMSpec {
        if let spec {
            let flagged = name != nil || kernel != nil || initramfs != nil || cmdline != nil || !net.isEmpty || !disk.isEmpty
                || hugepages != nil
            guard !flagged else { throw ValidationError("--spec: give either --spec or the spec flags (--name, --kernel, …), not both") }
            guard let data = FileManager.default.contents(atPath: spec) else {
                throw ValidationError("--spec \(spec.debugDescription): cannot read the file")
            }
            do { return try VMSpec.decode(json: data) } catch {
                throw ValidationError("--spec \(spec.debugDescription): \(error)")
            }
        }
        guard let name else { throw ValidationError("--name: missing (or give --spec FILE)") }
        var flags = VMSpecFlags(name: name)
        flags.vcpus = vcpus
        flags.memory = memory
        flags.kernel = kernel.map(Self.absolute)
        flags.initramfs = initramfs.map(Self.absolute)
        flags.cmdline = cmdline
        flags.nets = net
        flags.disks = disk.map(Self.absolute)
        flags.hugepages = hugepages
        do { return try flags.spec() } catch { throw ValidationError(error.description) }
    }

    /// The node resolves paths on its side: relative ones are made absolute here.
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

struct VMCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a VM (validated by the node; nothing runs until `vm start`).",
        discussion: """
            Examples:
              qarax-node vm create --name web1 --memory 512M \\
                  --kernel /srv/images/vmlinux --cmdline console=ttyS0
              qarax-node vm create --name db1 --kernel /srv/images/vmlinux \\
                  --net macvtap,parent=eth1,mode=bridge --disk /srv/disks/db1.raw
              qarax-node vm create --spec db1.json
            Every problem of the specification is reported with its field path, e.g.
              nics[0].mtu: 70000 is above 65535
            """
    )
    @OptionGroup var connection: SocketOption
    @OptionGroup var specOptions: VMSpecOptions
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: OutputFormat = .table

    func run() throws {
        printVM(try exchange(connection.client, .create(spec: try specOptions.vmSpec())), output)
    }
}

struct VMRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Create and start a VM, wait for a line on its console, and print how long it took.",
        discussion: """
            Example:
              qarax-node vm run --name probe --kernel /srv/images/tiny-pvh.elf \\
                  --cmdline console=ttyS0 \\
                  --wait-for-console QARAX-GUEST-READY --timeout 30s
            The VM keeps running afterwards (and stays when the wait fails, for inspection).
            """
    )
    @OptionGroup var connection: SocketOption
    @OptionGroup var specOptions: VMSpecOptions
    @Option(help: ArgumentHelp("Text to wait for on the serial console.", valueName: "text"))
    var waitForConsole: String?
    @Option(help: ArgumentHelp("How long to wait for the console text.", valueName: "duration"))
    var timeout = "30s"
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: OutputFormat = .table

    struct Timing: Encodable {
        let name: String
        let state: String
        let pid: Int32?
        let createStartSeconds: Double
        let consoleSeconds: Double?
        let text: String?
        enum CodingKeys: String, CodingKey {
            case name, state, pid, text
            case createStartSeconds = "create_start_seconds"
            case consoleSeconds = "console_seconds"
        }
    }

    func run() throws {
        let limit: Duration
        do { limit = try NodeOutput.duration(timeout, flag: "--timeout") } catch { throw ValidationError(error.description) }
        let spec = try specOptions.vmSpec()
        let client = connection.client
        let clock = ContinuousClock()
        let began = clock.now
        _ = try exchange(client, .create(spec: spec))
        let started = try exchange(client, .start(name: spec.name))
        let startedAt = clock.now
        guard case .vm(let report) = started else { throw ExitCode(1) }
        var seenAt: ContinuousClock.Instant?
        if let text = waitForConsole {
            var log = Data()
            let needle = Data(text.utf8)
            do {
                try client.followConsole(name: spec.name, deadline: began + limit) { chunk in
                    log.append(chunk)
                    if log.range(of: needle) != nil {
                        seenAt = clock.now
                        return false
                    }
                    return true
                }
            } catch {
                FileHandle.standardError.write(Data("error: \(text.debugDescription) not seen on the console of '\(spec.name)' within \(timeout): \(error)\n".utf8))
                throw ExitCode(3)
            }
        }
        let timing = Timing(name: spec.name, state: report.state, pid: report.pid,
                            createStartSeconds: Self.seconds(startedAt - began),
                            consoleSeconds: seenAt.map { Self.seconds($0 - began) }, text: waitForConsole)
        if output == .json {
            print(NodeOutput.json(timing))
        } else if let seconds = timing.consoleSeconds, let text = waitForConsole {
            print(String(format: "vm '%@' %@ (pid %@): create+start %.3f s, %@ on the console after %.3f s",
                         spec.name, report.state, report.pid.map(String.init) ?? "-", timing.createStartSeconds,
                         text.debugDescription, seconds))
        } else {
            print(String(format: "vm '%@' %@ (pid %@): create+start %.3f s", spec.name, report.state,
                         report.pid.map(String.init) ?? "-", timing.createStartSeconds))
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// A command that sends one request about a named VM and prints the VM afterwards.
protocol NamedVMCommand: ParsableCommand {
    var connection: SocketOption { get }
    var name: String { get }
    var output: OutputFormat { get }
    func request() -> NodeRequest
}

extension NamedVMCommand {
    func run() throws {
        printVM(try exchange(connection.client, request()), output)
    }
}

struct VMStart: NamedVMCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Prepare the host, launch the VMM and boot; returns once the VM runs.")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The VM's name.") var name: String
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: OutputFormat = .table
    func request() -> NodeRequest { .start(name: name) }
}

struct VMStop: NamedVMCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop the VM (graceful, then SIGTERM, then SIGKILL); `vm start` boots it again.")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The VM's name.") var name: String
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: OutputFormat = .table
    func request() -> NodeRequest { .stop(name: name) }
}

struct VMPause: NamedVMCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Pause the VM's vCPUs.")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The VM's name.") var name: String
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: OutputFormat = .table
    func request() -> NodeRequest { .pause(name: name) }
}

struct VMResume: NamedVMCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume a paused VM.")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The VM's name.") var name: String
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: OutputFormat = .table
    func request() -> NodeRequest { .resume(name: name) }
}

struct VMReboot: NamedVMCommand {
    static let configuration = CommandConfiguration(commandName: "reboot", abstract: "Reset the VM (the same VMM process).")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The VM's name.") var name: String
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: OutputFormat = .table
    func request() -> NodeRequest { .reboot(name: name) }
}

struct VMPowerButton: NamedVMCommand {
    static let configuration = CommandConfiguration(
        commandName: "power-button", abstract: "Press the VM's ACPI power button (the guest decides whether to shut down).")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The VM's name.") var name: String
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: OutputFormat = .table
    func request() -> NodeRequest { .powerButton(name: name) }
}

struct VMDelete: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Stop the VM if needed, release everything and forget it.")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The VM's name.") var name: String

    func run() throws {
        _ = try exchange(connection.client, .delete(name: name))
        print("vm '\(name)' deleted")
    }
}

struct VMInfo: NamedVMCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show one VM (with -o json: every field, including the VMM's pid).")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The VM's name.") var name: String
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: OutputFormat = .table
    func request() -> NodeRequest { .info(name: name) }
}

struct VMList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the node's VMs.")
    @OptionGroup var connection: SocketOption
    @Option(name: .shortAndLong, help: "Output: table or json.") var output: OutputFormat = .table

    func run() throws {
        guard case .vms(let reports) = try exchange(connection.client, .list) else { throw ExitCode(1) }
        print(output == .json ? NodeOutput.json(reports) : NodeOutput.table(reports), terminator: output == .json ? "\n" : "")
    }
}

struct VMConsole: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Print the VM's serial console log; --follow keeps printing as it grows (Ctrl-C to stop).")
    @OptionGroup var connection: SocketOption
    @Argument(help: "The VM's name.") var name: String
    @Flag(help: "Keep printing new console output.") var follow = false

    func run() throws {
        let client = connection.client
        if follow {
            do {
                try client.followConsole(name: name) { chunk in
                    FileHandle.standardOutput.write(chunk)
                    return true
                }
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode(1)
            }
            return
        }
        var offset: Int64 = 0
        while case .console(_, let next, let bytes) = try exchange(client, .console(name: name, offset: offset, follow: false)),
              !bytes.isEmpty {
            FileHandle.standardOutput.write(bytes)
            offset = next
        }
    }
}
