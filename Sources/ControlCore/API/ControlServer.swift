import Hummingbird
import NIOCore

/// Configuration of `qarax-control serve`.
public struct ServerConfiguration: Sendable {
    public var databasePath: String
    public var apiHost: String
    public var apiPort: Int
    public var tokenPath: String
    public var settings: ControlSettings

    public init(databasePath: String = "./qarax.db", apiHost: String = "127.0.0.1", apiPort: Int = 7700,
                tokenPath: String, settings: ControlSettings = ControlSettings()) {
        self.databasePath = databasePath
        self.apiHost = apiHost
        self.apiPort = apiPort
        self.tokenPath = tokenPath
        self.settings = settings
    }
}

/// The control daemon: inventory, control logic and REST API in one process.
public enum ControlServer {
    /// Opens the inventory, recovers interrupted operations, and serves the API until SIGTERM/SIGINT.
    /// `onReady` receives the bound port. `nodeListener`, when given, runs next to the API with the
    /// service (it accepts node connections and hands each to ``ControlService/serve(link:)``).
    public static func run(_ configuration: ServerConfiguration,
                           nodeListener: (@Sendable (ControlService) async throws -> Void)? = nil,
                           onReady: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let database = try InventoryDatabase(path: configuration.databasePath)
        let token = try TokenFile.loadOrCreate(at: configuration.tokenPath)
        let service = ControlService(database: database, settings: configuration.settings)
        try await service.recoverAfterStart()
        let router = APIRoutes.router(service: service, token: token)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.apiHost, port: configuration.apiPort),
                                 serverName: "qarax-control"),
            onServerRunning: { channel in await onReady(channel.localAddress?.port ?? configuration.apiPort) })
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await service.run() }
            if let nodeListener { group.addTask { try await nodeListener(service) } }
            try await app.runService()
            group.cancelAll()
        }
    }
}
