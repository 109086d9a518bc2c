import ArgumentParser
import ControlCore
import Foundation

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Inspect nodes and put them in maintenance.",
        subcommands: [List.self, Show.self, Maintenance.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List nodes.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCall {
                let data = try await options.client().send("GET", "/v1/nodes")
                if options.output == .json { return printJSON(data) }
                let nodes = jsonObject(data) as? [[String: Any]] ?? []
                printTable(["NAME", "STATUS", "ADDRESS", "CPUS", "MEMORY", "VERSION", "LAST SEEN"], nodes.map { node in
                    let inventory = node["inventory"] as? [String: Any]
                    return [field(node, "name"), field(node, "status"), field(node, "address"), field(inventory, "cpus"),
                            sizeField(inventory, "memory_bytes"), field(node, "node_version"), field(node, "last_seen")]
                })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one node (name or id).")
        @OptionGroup var options: ClientOptions
        @Argument var node: String

        func run() async throws {
            try await clientCall { printJSON(try await options.client().send("GET", "/v1/nodes/\(node)")) }
        }
    }

    struct Maintenance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enter (--on) or leave (--off) maintenance: no new placements.")
        @OptionGroup var options: ClientOptions
        @Argument var node: String
        @Flag(inversion: .prefixedEnableDisable, help: "Enable or disable maintenance.")
        var maintenance = true

        func run() async throws {
            try await clientCall {
                let body = try JSONEncoder().encode(MaintenanceBody(enabled: maintenance))
                let data = try await options.client().send("PUT", "/v1/nodes/\(node)/maintenance", json: body)
                if options.output == .json { return printJSON(data) }
                print("node \(node): \(field(jsonObject(data), "status"))")
            }
        }
    }
}
