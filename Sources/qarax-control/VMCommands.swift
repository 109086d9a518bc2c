import ArgumentParser
import ControlCore
import Foundation
import VMModel

struct VMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm", abstract: "Create, inspect and drive VMs.",
        subcommands: [Create.self, List.self, Show.self, Start.self, Stop.self, Pause.self, Resume.self, Reboot.self,
                      Delete.self, Console.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a VM from a specification file or from flags.",
            discussion: "With --file the JSON VMSpec is used as is; flags build a small one (kernel boot).")
        @OptionGroup var options: ClientOptions
        @Option(help: "A VMSpec JSON file.") var file: String?
        @Option(help: "The VM's name (flags mode).") var name: String?
        @Option(help: "Boot vCPUs.") var vcpus = 1
        @Option(help: "Memory, e.g. 512M.") var memory = "256M"
        @Option(help: "Kernel path on the node.") var kernel: String?
        @Option(help: "Initramfs path on the node.") var initramfs: String?
        @Option(help: "Kernel command line.") var cmdline: String?
        @Option(help: "Serial console to a file on the node.") var serialFile: String?
        @Option(help: "cloud-hypervisor or qemu.") var vmm: String?
        @Option(help: "Pin to this node (name or id).") var node: String?
        @Option(help: "NIC=NETWORK: attach NIC (by id) to a network.") var network: [String] = []
        @Flag(help: "Start the VM once created.") var start = false
        @Flag(help: "Wait for the operation to finish, showing progress.") var wait = false
        @Option(help: "Idempotency key (retrying with the same key is safe).") var requestId: String?

        func run() async throws {
            try await clientCall {
                let spec: VMSpec
                if let file {
                    guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("--file: cannot read \(file)") }
                    do {
                        spec = try VMSpec.decode(json: data)
                    } catch {
                        throw ValidationError("--file \(file): \(error)")
                    }
                } else {
                    guard let name else { throw ValidationError("give --file or --name") }
                    guard let kernel else { throw ValidationError("--kernel is required without --file") }
                    let size: ByteSize
                    do { size = try ByteSize(parsing: memory) } catch { throw ValidationError("--memory: \(error)") }
                    spec = VMSpec(name: name, cpus: CPUSpec(bootVCPUs: vcpus), memory: MemorySpec(size: size),
                                  payload: PayloadSpec(kernel: kernel, initramfs: initramfs, cmdline: cmdline),
                                  serial: serialFile.map { ConsoleSpec(mode: .file, path: $0) } ?? .defaultSerial)
                }
                var networks: [String: String] = [:]
                for pair in network {
                    let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    guard parts.count == 2 else { throw ValidationError("--network: \"\(pair)\" is not NIC=NETWORK") }
                    networks[parts[0]] = parts[1]
                }
                let backend: VMMBackend? = try vmm.map { try parseEnum($0, option: "--vmm") }
                let body = CreateVMBody(spec: spec, vmm: backend, node: node, networks: networks.isEmpty ? nil : networks, start: start)
                let client = try options.client()
                let data = try await client.send("POST", "/v1/vms", json: try JSONEncoder().encode(body), idempotencyKey: requestId)
                let created = jsonObject(data) as? [String: Any]
                let vm = created?["vm"] as? [String: Any]
                if options.output == .table { print("VM \(field(vm, "name")) created: \(field(vm, "id"))") }
                if let op = created?["operation"], let opData = try? JSONSerialization.data(withJSONObject: op) {
                    try await finish(operation: opData, client: client, wait: wait, output: options.output)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List VMs.")
        @OptionGroup var options: ClientOptions
        @Option(help: "Only VMs on this node.") var node: String?
        @Option(help: "Only VMs in this observed state.") var state: String?
        @Option(help: "Only VMs whose name starts with this.") var namePrefix: String?
        @Option(help: "Page size.") var limit = 100
        @Option(help: "Continue after this page token.") var pageToken: String?

        func run() async throws {
            try await clientCall {
                var query = ["limit": String(limit)]
                if let node { query["node"] = node }
                if let state { query["observed_state"] = state }
                if let namePrefix { query["name_prefix"] = namePrefix }
                if let pageToken { query["page_token"] = pageToken }
                let data = try await options.client().send("GET", "/v1/vms", query: query)
                if options.output == .json { return printJSON(data) }
                let page = jsonObject(data) as? [String: Any]
                let vms = page?["items"] as? [[String: Any]] ?? []
                printTable(["NAME", "ID", "DESIRED", "OBSERVED", "NODE", "VCPUS", "MEMORY", "BOOT MS"], vms.map { vm in
                    [field(vm, "name"), field(vm, "id"), field(vm, "desired_state"), field(vm, "observed_state"),
                     field(vm, "node_id"), field(vm, "vcpus"), sizeField(vm, "memory_bytes"), field(vm, "boot_time_ms")]
                })
                if let next = page?["next_page_token"] as? String { print("next page: --page-token \(next)") }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one VM (name or id).")
        @OptionGroup var options: ClientOptions
        @Argument var vm: String

        func run() async throws {
            try await clientCall { printJSON(try await options.client().send("GET", "/v1/vms/\(vm)")) }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a VM (placing it on a node first).")
        @OptionGroup var action: ActionOptions
        func run() async throws { try await action.perform("start") }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a VM.")
        @OptionGroup var action: ActionOptions
        func run() async throws { try await action.perform("stop") }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a VM.")
        @OptionGroup var action: ActionOptions
        func run() async throws { try await action.perform("pause") }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused VM.")
        @OptionGroup var action: ActionOptions
        func run() async throws { try await action.perform("resume") }
    }

    struct Reboot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reboot a running VM.")
        @OptionGroup var action: ActionOptions
        func run() async throws { try await action.perform("reboot") }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a VM (stopping it on its node).")
        @OptionGroup var action: ActionOptions
        func run() async throws { try await action.perform(nil) }
    }

    struct Console: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the tail of a VM's serial console.")
        @OptionGroup var options: ClientOptions
        @Argument var vm: String
        @Option(help: "Bytes from the end.") var bytes = 65536

        func run() async throws {
            try await clientCall {
                let data = try await options.client().send("GET", "/v1/vms/\(vm)/console", query: ["bytes": String(bytes)])
                FileHandle.standardOutput.write(data)
            }
        }
    }
}

/// The VM and options of start/stop/pause/resume/reboot/delete.
struct ActionOptions: ParsableArguments {
    @OptionGroup var options: ClientOptions
    @Argument(help: "The VM (name or id).") var vm: String
    @Flag(help: "Wait for the operation to finish, showing progress.") var wait = false
    @Option(help: "Idempotency key (retrying with the same key is safe).") var requestId: String?

    func perform(_ action: String?) async throws {
        try await clientCall {
            let client = try options.client()
            let data = if let action {
                try await client.send("POST", "/v1/vms/\(vm)/\(action)", idempotencyKey: requestId)
            } else {
                try await client.send("DELETE", "/v1/vms/\(vm)", idempotencyKey: requestId)
            }
            try await finish(operation: data, client: client, wait: wait, output: options.output)
        }
    }
}

