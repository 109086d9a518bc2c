public import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Where the client finds the API and its token: flags, then `QARAX_ENDPOINT` / `QARAX_TOKEN`, then
/// `~/.config/qarax/endpoint` and `~/.config/qarax/token`.
public struct ClientConfiguration: Sendable, Hashable {
    public var endpoint: URL
    public var token: String

    public static let defaultEndpoint = "http://127.0.0.1:7700"

    public static func resolve(endpoint: String?, token: String?, tokenFile: String?,
                               environment: [String: String] = ProcessInfo.processInfo.environment,
                               configDirectory: String? = nil) throws(ClientError) -> ClientConfiguration {
        let directory = configDirectory ?? (environment["HOME"].map { $0 + "/.config/qarax" } ?? "/root/.config/qarax")
        func file(_ path: String) -> String? {
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? nil : text
        }
        let endpointText = endpoint ?? environment["QARAX_ENDPOINT"] ?? file(directory + "/endpoint") ?? defaultEndpoint
        guard let url = URL(string: endpointText), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw .configuration("endpoint \"\(endpointText)\" is not an http(s) URL")
        }
        let tokenText = token ?? tokenFile.flatMap(file) ?? environment["QARAX_TOKEN"] ?? file(directory + "/token")
        guard let tokenText else {
            throw .configuration("no API token: pass --token or --token-file, set QARAX_TOKEN, or write \(directory)/token")
        }
        return ClientConfiguration(endpoint: url, token: tokenText)
    }

    public init(endpoint: URL, token: String) {
        self.endpoint = endpoint
        self.token = token
    }
}

/// What the client fails with.
public enum ClientError: Error, Sendable, CustomStringConvertible {
    case configuration(String)
    case transport(String)
    /// The API answered with an error body.
    case api(status: Int, APIError)

    public var description: String {
        switch self {
        case .configuration(let message): message
        case .transport(let message): "cannot reach the control daemon: \(message)"
        case .api(let status, let error):
            (error.field.map { "\($0): " } ?? "") + error.message + " (HTTP \(status), \(error.code))"
                + (error.errors.map { list in list.map { "\n  - " + ($0.field.map { "\($0): " } ?? "") + $0.message }.joined() } ?? "")
        }
    }
}

/// A small client of the control daemon's REST API.
public struct ControlClient: Sendable {
    public let configuration: ClientConfiguration

    public init(_ configuration: ClientConfiguration) {
        self.configuration = configuration
    }

    /// Sends a request; returns the body of a 2xx answer, throws ``ClientError/api(status:_:)`` otherwise.
    public func send(_ method: String, _ path: String, query: [String: String] = [:], json body: Data? = nil,
                     idempotencyKey: String? = nil) async throws(ClientError) -> Data {
        guard var components = URLComponents(url: configuration.endpoint.appendingPathComponent(path), resolvingAgainstBaseURL: false) else {
            throw .configuration("bad path \(path)")
        }
        if !query.isEmpty { components.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) } }
        guard let url = components.url else { throw .configuration("bad path \(path)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.setValue("Bearer \(configuration.token)", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        if let idempotencyKey { request.setValue(idempotencyKey, forHTTPHeaderField: "Idempotency-Key") }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw .transport("\(error.localizedDescription) (\(configuration.endpoint.absoluteString))")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            let error = (try? JSONDecoder().decode(APIError.self, from: data))
                ?? APIError(status: status, code: "http_\(status)", message: String(decoding: data.prefix(500), as: UTF8.self))
            throw .api(status: status, error)
        }
        return data
    }

    /// Polls an operation until it succeeds or fails, reporting each change of status or progress.
    public func wait(operation id: String, progress: (String, Double?) -> Void) async throws(ClientError) -> [String: Any] {
        var last = ""
        while true {
            let data = try await send("GET", "/v1/operations/\(id)")
            let op = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
            let status = op["status"] as? String ?? "?"
            let fraction = op["progress"] as? Double
            let line = "\(status) \(fraction.map { String(Int($0 * 100)) } ?? "")"
            if line != last {
                progress(status, fraction)
                last = line
            }
            if status == "succeeded" || status == "failed" { return op }
            do {
                try await Task.sleep(for: .milliseconds(200))
            } catch {
                throw .transport("cancelled")
            }
        }
    }
}
