import ArgumentParser
import NodeCore

@main
struct QaraxNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qarax-node",
        abstract: "The qarax node daemon: prepares this host and runs its virtual machines.",
        version: NodeVersion.current,
        subcommands: [Serve.self, VM.self, Doctor.self]
    )
}
