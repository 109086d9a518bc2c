import ArgumentParser
import ClusterPKI

/// `qarax-control pki …`: the cluster CA and the certificates of nodes and clients.
struct PKI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pki",
        abstract: "Create the cluster CA and issue node, control and admin certificates.",
        subcommands: [Init.self, IssueNode.self, IssueControl.self, IssueClient.self]
    )

    struct Options: ParsableArguments {
        @Option(name: .long, help: "Directory of the CA and the issued files (created 0700).")
        var dir: String

        @Option(name: .long, help: "Validity in days.")
        var days: Int?

        func validity(default value: Duration) throws -> Duration {
            guard let days else { return value }
            guard days > 0 else { throw ValidationError("--days: \(days) is not a positive number of days") }
            return .seconds(days * 86_400)
        }
    }

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the cluster CA (ca.pem, ca-key.pem 0600).")
        @OptionGroup var options: Options

        func run() throws {
            let files = try ClusterPKI.initCA(dir: options.dir, validity: options.validity(default: ClusterPKI.defaultCAValidity))
            print("wrote \(files.certificatePath)\nwrote \(files.privateKeyPath) (0600)")
        }
    }

    struct IssueNode: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue-node", abstract: "Issue a node certificate and key (NAME.pem, NAME-key.pem 0600).")
        @Argument(help: "The node's name, as it identifies itself to qarax-control.") var name: String
        @OptionGroup var options: Options

        func run() throws {
            let files = try ClusterPKI.issueNode(name: name, dir: options.dir,
                                                 validity: options.validity(default: ClusterPKI.defaultLeafValidity))
            print("wrote \(files.certificatePath)\nwrote \(files.privateKeyPath) (0600)")
        }
    }

    struct IssueControl: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue-control", abstract: "Issue the control daemon's certificate and key.")
        @Argument(help: "The control daemon's name.") var name: String = "qarax-control"
        @OptionGroup var options: Options

        func run() throws {
            let files = try ClusterPKI.issueControl(name: name, dir: options.dir,
                                                    validity: options.validity(default: ClusterPKI.defaultLeafValidity))
            print("wrote \(files.certificatePath)\nwrote \(files.privateKeyPath) (0600)")
        }
    }

    struct IssueClient: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue-client", abstract: "Issue an administration client's certificate and key.")
        @Argument(help: "The client's name.") var name: String
        @OptionGroup var options: Options

        func run() throws {
            let files = try ClusterPKI.issueClient(name: name, dir: options.dir,
                                                   validity: options.validity(default: ClusterPKI.defaultLeafValidity))
            print("wrote \(files.certificatePath)\nwrote \(files.privateKeyPath) (0600)")
        }
    }
}
