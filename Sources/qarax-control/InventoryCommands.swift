import ArgumentParser
import ControlCore
import Foundation

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Register and list kernel, initramfs and disk images.",
        subcommands: [Add.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register an image; the daemon measures its size and SHA-256.")
        @OptionGroup var options: ClientOptions
        @Argument var name: String
        @Option(help: "kernel, initramfs or disk.") var kind: String
        @Option(help: "Absolute path of the file (same on every node that has it).") var path: String
        @Option(help: "Expected SHA-256 (lowercase hex).") var sha256: String?
        @Option(help: "A node that has the file (repeat; default: every node).") var node: [String] = []
        @Flag(help: "Wait until measured, showing progress.") var wait = false
        @Option(help: "Idempotency key.") var requestId: String?

        func run() async throws {
            try await clientCall {
                let client = try options.client()
                let body = ImageAddRequest(name: name, kind: try parseEnum(kind, option: "--kind"), path: path, sha256: sha256, nodes: node.isEmpty ? nil : node)
                let data = try await client.send("POST", "/v1/images", json: try JSONEncoder().encode(body), idempotencyKey: requestId)
                try await finish(operation: data, client: client, wait: wait, output: options.output)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List images.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await clientCall {
                let data = try await options.client().send("GET", "/v1/images")
                if options.output == .json { return printJSON(data) }
                let images = jsonObject(data) as? [[String: Any]] ?? []
                printTable(["NAME", "KIND", "SIZE", "SHA256", "PATH", "NODES"], images.map { entry in
                    let image = entry["image"] as? [String: Any]
                    return [field(image, "name"), field(image, "kind"), field(image, "size_bytes"),
                            String(field(image, "sha256").prefix(16)), field(image, "path"),
                            (entry["nodes"] as? [String] ?? []).joined(separator: ",")]
                })
            }
        }
    }
}

struct NetworkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Declare and list per-node networks.",
        subcommands: [Create.self, List.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Declare a network on a node (a bridge or a MACVTAP parent).")
        @OptionGroup var options: ClientOptions
        @Argument var name: String
        @Option(help: "The node (name or id).") var node: String
        @Option(help: "bridge or macvtap.") var kind: String
        @Option(help: "The bridge, or the MACVTAP parent link.") var parent: String
        @Option(help: "MTU (default 1500).") var mtu: Int?

        func run() async throws {
            try await clientCall {
                let body = CreateNetworkBody(name: name, node: node, kind: try parseEnum(kind, option: "--kind"), parent: parent, mtu: mtu)
                let data = try await options.client().send("POST", "/v1/networks", json: try JSONEncoder().encode(body))
                if options.output == .json { return printJSON(data) }
                print("network \(name) on \(node): \(field(jsonObject(data), "id"))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List networks.")
        @OptionGroup var options: ClientOptions
        @Option(help: "Only networks on this node.") var node: String?

        func run() async throws {
            try await clientCall {
                let data = try await options.client().send("GET", "/v1/networks", query: node.map { ["node": $0] } ?? [:])
                if options.output == .json { return printJSON(data) }
                let networks = jsonObject(data) as? [[String: Any]] ?? []
                printTable(["NAME", "NODE", "KIND", "PARENT", "MTU"], networks.map { net in
                    [field(net, "name"), field(net, "node_id"), field(net, "kind"), field(net, "parent"), field(net, "mtu")]
                })
            }
        }
    }
}


/// Parses an enum option, naming the allowed values when the text is none of them.
func parseEnum<T: RawRepresentable & CaseIterable>(_ text: String, option: String) throws -> T where T.RawValue == String {
    guard let value = T(rawValue: text) else {
        throw ValidationError("\(option): \"\(text)\" is not one of: \(T.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return value
}
