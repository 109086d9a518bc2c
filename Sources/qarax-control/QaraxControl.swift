import ArgumentParser

/// qarax-control: the cluster control daemon and its command-line client.
@main
struct QaraxControl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qarax-control",
        abstract: "The qarax cluster control daemon (inventory, placement, REST API) and its client.",
        version: "0.1.0",
        subcommands: [ServeCommand.self, PKI.self, NodeCommand.self, VMCommand.self, ImageCommand.self, NetworkCommand.self]
    )
}
