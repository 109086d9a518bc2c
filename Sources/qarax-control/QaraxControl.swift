import ArgumentParser

/// qarax-control: the cluster control daemon. Until the control plane lands this executable only
/// answers `--help` and `--version`, so install paths are already the ones operators will use.
@main
struct QaraxControl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qarax-control",
        abstract: "The qarax cluster control daemon (inventory, placement, REST API).",
        discussion: """
            The control plane (SQLite inventory, node registry, REST API) is not built yet; \
            use `qarax-node` on each host meanwhile.
            """,
        version: "0.1.0",
        subcommands: [PKI.self]
    )
}
