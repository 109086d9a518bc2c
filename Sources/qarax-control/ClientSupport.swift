import ArgumentParser
import ControlCore
import Foundation

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// Options every client subcommand takes.
struct ClientOptions: ParsableArguments {
    @Option(help: "The API endpoint (default: $QARAX_ENDPOINT, ~/.config/qarax/endpoint, http://127.0.0.1:7700).")
    var endpoint: String?

    @Option(help: "The API token (default: $QARAX_TOKEN, ~/.config/qarax/token).")
    var token: String?

    @Option(help: "A file holding the API token (e.g. the daemon's <db>.token).")
    var tokenFile: String?

    @Option(name: [.short, .customLong("output")], help: "table or json.")
    var output: OutputFormat = .table

    func client() throws -> ControlClient {
        ControlClient(try ClientConfiguration.resolve(endpoint: endpoint, token: token, tokenFile: tokenFile))
    }
}

/// Runs a client command, printing API errors as the API states them and exiting non-zero.
func clientCall(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ClientError {
        log("error: \(error.description)")
        throw ExitCode(1)
    }
}

func jsonObject(_ data: Data) -> Any {
    (try? JSONSerialization.jsonObject(with: data)) ?? [:]
}

func printJSON(_ data: Data) {
    let object = jsonObject(data)
    let pretty = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? data
    print(String(decoding: pretty, as: UTF8.self))
}

/// Prints rows as aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    print(line(header))
    for row in rows { print(line(row)) }
}

func field(_ object: Any?, _ key: String) -> String {
    guard let dict = object as? [String: Any], let value = dict[key], !(value is NSNull) else { return "-" }
    return "\(value)"
}

/// A byte count for people: exact when a binary unit divides it (`256 MiB`), else one decimal
/// (`23.5 GiB`).
func sizeField(_ object: Any?, _ key: String) -> String {
    guard let dict = object as? [String: Any], let bytes = (dict[key] as? NSNumber)?.int64Value, bytes >= 0 else { return "-" }
    for (suffix, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes >= Int64(1) << shift {
        let value = Double(bytes) / Double(Int64(1) << shift)
        return bytes % (Int64(1) << shift) == 0 ? "\(bytes >> shift) \(suffix)" : String(format: "%.1f %@", value, suffix)
    }
    return "\(bytes) B"
}

/// Prints an accepted operation, and with `wait` follows it to the end (non-zero exit on failure).
func finish(operation data: Data, client: ControlClient, wait: Bool, output: OutputFormat) async throws {
    guard let op = jsonObject(data) as? [String: Any], let id = op["id"] as? String else {
        printJSON(data)
        return
    }
    guard wait else {
        if output == .json { printJSON(data) } else { print("operation \(id): \(field(op, "status"))") }
        return
    }
    let final = try await client.wait(operation: id) { status, progress in
        log("operation \(id): \(status)\(progress.map { " \(Int($0 * 100))%" } ?? "")")
    }
    if output == .json {
        printJSON((try? JSONSerialization.data(withJSONObject: final)) ?? Data())
    } else {
        print("operation \(id): \(field(final, "status"))")
    }
    if field(final, "status") == "failed" {
        log("error: \(field(final, "error_message"))")
        throw ExitCode(1)
    }
}
