public import Foundation
public import Hummingbird
import HTTPTypes
import NIOCore
import ServiceLifecycle
import VMModel

/// Checks the bearer token and turns every error (including the router's own) into the JSON error body.
struct GuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
                  Self.constantTimeEqual(Array(header.utf8.dropFirst(7)), Array(token.utf8)) else {
                throw ControlError.unauthorized
            }
            return try await next(request, context)
        } catch {
            return APIRoutes.errorResponse(APIError.from(error))
        }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}

/// The REST API's routes over a ``ControlService``.
public enum APIRoutes {
    /// Largest request body accepted.
    public static let bodyLimit = 1 << 20
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!

    /// A router with every route of the API behind bearer-token authentication. An idle event
    /// stream sends a comment line every `keepAlive`, which is how a gone client is noticed.
    public static func router(service: ControlService, token: String,
                              keepAlive: Duration = .seconds(15)) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: GuardMiddleware(token: token))
        addRoutes(to: router, service: service, keepAlive: keepAlive)
        return router
    }

    static func addRoutes(to router: Router<BasicRequestContext>, service: ControlService, keepAlive: Duration) {
        router.get("/v1/nodes") { _, _ in try json(try await service.listNodes()) }
        router.post("/v1/nodes") { request, _ in
            try json(try await service.registerNode(try await body(RegisterNodeBody.self, request)), status: .created)
        }
        router.get("/v1/nodes/{id}") { _, context in try json(try await service.node(try context.parameters.require("id"))) }
        router.put("/v1/nodes/{id}/maintenance") { request, context in
            let body = try await body(MaintenanceBody.self, request)
            return try json(try await service.setMaintenance(try context.parameters.require("id"), enabled: body.enabled))
        }

        router.get("/v1/vms") { request, _ in
            let query = request.uri.queryParameters
            var filter = VMFilter()
            filter.node = query.get("node")
            filter.namePrefix = query.get("name_prefix")
            filter.pageToken = query.get("page_token")
            if let text = query.get("desired_state") {
                guard let state = DesiredVMState(rawValue: text) else { throw badQuery("desired_state", text, DesiredVMState.allCases.map(\.rawValue)) }
                filter.desiredState = state
            }
            if let text = query.get("observed_state") {
                guard let state = ObservedVMState(rawValue: text) else { throw badQuery("observed_state", text, ObservedVMState.allCases.map(\.rawValue)) }
                filter.observedState = state
            }
            if let text = query.get("limit") {
                guard let limit = Int(text) else { throw ControlError.invalid([FieldProblem(field: "limit", reason: "\"\(text)\" is not an integer")]) }
                filter.limit = limit
            }
            return try json(try await service.listVMs(filter))
        }
        router.post("/v1/vms") { request, _ in
            let created = try await service.createVM(try await body(CreateVMBody.self, request), idempotencyKey: key(request))
            return try json(VMCreated(vm: created.vm, operation: created.operation), status: .created,
                            location: "/v1/vms/\(created.vm.id)")
        }
        router.get("/v1/vms/{id}") { _, context in try json(try await service.vm(try context.parameters.require("id"))) }
        router.delete("/v1/vms/{id}") { request, context in
            try accepted(try await service.deleteVM(try context.parameters.require("id"), idempotencyKey: key(request)))
        }
        for action in VMAction.allCases {
            router.post("/v1/vms/{id}/\(action.rawValue)") { request, context in
                try accepted(try await service.act(try context.parameters.require("id"), action, idempotencyKey: key(request)))
            }
        }
        router.post("/v1/vms/{id}/nics") { request, context in
            let body = try await body(AddNICBody.self, request)
            return try accepted(try await service.addNIC(try context.parameters.require("id"), body, idempotencyKey: key(request)))
        }
        router.post("/v1/vms/{id}/disks") { request, context in
            let body = try await body(AddDiskBody.self, request)
            return try accepted(try await service.addDisk(try context.parameters.require("id"), body, idempotencyKey: key(request)))
        }
        router.get("/v1/vms/{id}/console") { request, context in
            var bytes = 65536
            if let text = request.uri.queryParameters.get("bytes") {
                guard let value = Int(text) else { throw ControlError.invalid([FieldProblem(field: "bytes", reason: "\"\(text)\" is not an integer")]) }
                bytes = value
            }
            let tail = try await service.consoleTail(try context.parameters.require("id"), maxBytes: bytes)
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: tail)))
        }

        router.get("/v1/images") { _, _ in try json(try await service.listImages()) }
        router.post("/v1/images") { request, _ in
            try accepted(try await service.addImage(try await body(ImageAddRequest.self, request), idempotencyKey: key(request)))
        }
        router.get("/v1/networks") { request, _ in
            try json(try await service.listNetworks(node: request.uri.queryParameters.get("node")))
        }
        router.post("/v1/networks") { request, _ in
            try json(try await service.createNetwork(try await body(CreateNetworkBody.self, request)), status: .created)
        }
        router.get("/v1/rate-limit-groups") { _, _ in try json(try await service.listRateLimitGroups()) }
        router.post("/v1/rate-limit-groups") { request, _ in
            try json(try await service.createRateLimitGroup(try await body(CreateRateLimitGroupBody.self, request)), status: .created)
        }
        router.get("/v1/operations/{id}") { _, context in try json(try await service.operation(try context.parameters.require("id"))) }
        router.get("/v1/events") { request, _ in try eventStream(request, service: service, keepAlive: keepAlive) }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: try await service.metricsText())))
        }
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: ResponseBody(byteBuffer: ByteBuffer(bytes: try OpenAPIDocument.data())))
        }
    }

    struct VMCreated: Codable, Sendable {
        var vm: VMRecord
        var operation: OperationRecord
    }

    static func badQuery(_ field: String, _ value: String, _ allowed: [String]) -> ControlError {
        .invalid([FieldProblem(field: field, reason: "\"\(value)\" is not one of: \(allowed.joined(separator: ", "))")])
    }

    static func key(_ request: Request) -> String? { request.headers[idempotencyKey] }

    static func body<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: bodyLimit)
        } catch {
            throw ControlError.bodyTooLarge(limit: bodyLimit)
        }
        return try decodeBody(T.self, from: Data(buffer.readableBytesView))
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, location: String? = nil) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let location { headers[.location] = location }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    static func accepted(_ op: OperationRecord) throws -> Response {
        try json(op, status: op.status.isFinal ? .ok : .accepted, location: "/v1/operations/\(op.id)")
    }

    static func errorResponse(_ error: APIError) -> Response {
        let data = (try? encoder.encode(error)) ?? Data("{\"code\":\"internal\",\"message\":\"unencodable error\"}".utf8)
        return Response(status: HTTPResponse.Status(code: error.status), headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Server-Sent Events: the events after `since` (or `Last-Event-ID`), then live ones unless `follow=false`.
    static func eventStream(_ request: Request, service: ControlService, keepAlive: Duration) throws -> Response {
        let query = request.uri.queryParameters
        let sinceText = query.get("since") ?? request.headers[HTTPField.Name("Last-Event-ID")!] ?? "0"
        guard let since = Int64(sinceText), since >= 0 else {
            throw ControlError.invalid([FieldProblem(field: "since", reason: "\"\(sinceText)\" is not a non-negative integer")])
        }
        let followText = query.get("follow") ?? "true"
        guard let follow = Bool(followText) else {
            throw ControlError.invalid([FieldProblem(field: "follow", reason: "\"\(followText)\" is not true or false")])
        }
        let live = follow ? service.events.subscribe() : nil
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                        body: ResponseBody { writer in
            var last = since
            while true {
                let batch = try await service.events(after: last)
                for event in batch { try await writer.write(sse(event)) }
                last = batch.last?.seq ?? last
                if batch.count < 1000 { break }
            }
            if let live {
                // Live events, with a comment line every `keepAlive` so a gone client is noticed.
                enum Item: Sendable { case event(EventRecord), keepAlive }
                let (items, feed) = AsyncStream.makeStream(of: Item.self, bufferingPolicy: .bufferingNewest(EventBus.bufferLimit))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await event in live { feed.yield(.event(event)) }
                        feed.finish()
                    }
                    group.addTask {
                        while true {
                            try await Task.sleep(for: keepAlive)
                            feed.yield(.keepAlive)
                        }
                    }
                    // A graceful shutdown ends the stream (the client reconnects with Last-Event-ID).
                    try await withGracefulShutdownHandler {
                        for await item in items {
                            switch item {
                            case .event(let event) where (event.seq ?? 0) > last:
                                try await writer.write(sse(event))
                                last = event.seq ?? last
                            case .event:
                                continue
                            case .keepAlive:
                                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                            }
                        }
                    } onGracefulShutdown: {
                        feed.finish()
                    }
                    group.cancelAll()
                }
            }
            try await writer.finish(nil)
        })
    }

    static func sse(_ event: EventRecord) throws -> ByteBuffer {
        let data = String(decoding: try encoder.encode(event), as: UTF8.self)
        return ByteBuffer(string: "id: \(event.seq ?? 0)\nevent: \(event.action)\ndata: \(data)\n\n")
    }
}

/// The OpenAPI 3.1 document of the API, bundled as a resource (same bytes as docs/openapi.json).
public enum OpenAPIDocument {
    public static func data() throws -> Data {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json", subdirectory: "Resources") else {
            throw CocoaError(.fileNoSuchFile)
        }
        return try Data(contentsOf: url)
    }
}
