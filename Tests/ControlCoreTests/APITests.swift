import Foundation
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing
@testable import ControlCore

@Suite("REST API")
struct APITests {
    static let token = "test-token-0123456789"

    struct Fixture {
        let dir: TempDir
        let service: ControlService
        let link: TestNodeLink
        let serving: Task<Void, any Error>
    }

    /// A service with one connected test-double node "n1" and a network "prod" on it.
    static func withAPI(_ body: @escaping @Sendable (any TestClientProtocol, Fixture) async throws -> Void) async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let service = try makeService(dir)
        let link = TestNodeLink(name: "n1")
        let serving = Task { try await service.serve(link: link) }
        defer { link.close(); serving.cancel() }
        #expect(try await eventually(wakeOn: [service.changes]) { try await service.listNodes().first?.status == .up })
        _ = try await service.createNetwork(CreateNetworkBody(name: "prod", node: "n1", kind: .bridge, parent: "br0"))
        let app = Application(router: APIRoutes.router(service: service, token: token))
        try await app.test(.router) { client in
            try await body(client, Fixture(dir: dir, service: service, link: link, serving: serving))
        }
    }

    struct Reply {
        let status: HTTPResponse.Status
        let body: String
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]) ?? [:]
        }
    }

    static func call(_ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil,
                     token: String? = APITests.token, key: String? = nil) async throws -> Reply {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        if let key { headers[HTTPField.Name("Idempotency-Key")!] = key }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
            Reply(status: response.status, body: String(buffer: response.body))
        }
    }

    static let vmBody = #"{"spec":{"name":"web","cpus":{"boot_vcpus":1},"memory":{"size":"256M"},"payload":{"kernel":"/k"},"nics":[{"id":"net0","kind":"tap"}]},"networks":{"net0":"prod"}}"#

    /// Every route of the API with a concrete URI (VM "web" exists, operation id filled in).
    static func routes(op: String) -> [(HTTPRequest.Method, String, String?)] {
        [
            (.get, "/v1/nodes", nil), (.post, "/v1/nodes", #"{"name":"n2","address":"10.0.0.2:7701"}"#),
            (.get, "/v1/nodes/n1", nil), (.put, "/v1/nodes/n1/maintenance", #"{"enabled":false}"#),
            (.get, "/v1/vms", nil), (.post, "/v1/vms", vmBody.replacingOccurrences(of: "\"web\"", with: "\"web2\"")),
            (.get, "/v1/vms/web", nil),
            (.post, "/v1/vms/web/start", nil), (.post, "/v1/vms/web/pause", nil), (.post, "/v1/vms/web/resume", nil),
            (.post, "/v1/vms/web/reboot", nil), (.post, "/v1/vms/web/stop", nil),
            (.post, "/v1/vms/web/nics", #"{"nic":{"id":"net1","kind":"tap"}}"#),
            (.post, "/v1/vms/web/disks", #"{"disk":{"id":"d1","path":"/var/lib/d1.img"}}"#),
            (.get, "/v1/vms/web/console", nil),
            (.get, "/v1/images", nil), (.post, "/v1/images", #"{"name":"img","kind":"kernel","path":"/etc/hostname"}"#),
            (.get, "/v1/networks", nil), (.post, "/v1/networks", #"{"name":"lan","node":"n1","kind":"macvtap","parent":"eth0"}"#),
            (.get, "/v1/rate-limit-groups", nil),
            (.post, "/v1/rate-limit-groups", #"{"name":"slow","rate_limiter":{"bandwidth":{"size":1000,"refill_time":100}}}"#),
            (.get, "/v1/operations/\(op)", nil), (.get, "/v1/events?follow=false", nil),
            (.get, "/metrics", nil), (.get, "/openapi.json", nil),
            (.delete, "/v1/vms/web", nil),
        ]
    }

    @Test func everyRouteWithGoodInput() async throws {
        try await Self.withAPI { client, fixture in
            let created = try await Self.call(client, .post, "/v1/vms", Self.vmBody)
            #expect(created.status == .created, "\(created.body)")
            let op = (created.json["operation"] as? [String: Any])?["id"] as? String ?? ""
            for (method, uri, body) in Self.routes(op: op) {
                let reply = try await Self.call(client, method, uri, body)
                #expect((200..<300).contains(reply.status.code), "\(method) \(uri): \(reply.status) \(reply.body)")
                // Let operations reach the test-double node between steps.
                await fixture.service.processPendingOperations()
            }
            let vms = try await Self.call(client, .get, "/v1/vms?observed_state=running")
            #expect(vms.body.contains("web2") == false)
            #expect(try await fixture.service.listImages().map(\.image.name) == ["img"])
        }
    }

    @Test func everyRouteRefusesMissingOrWrongToken() async throws {
        try await Self.withAPI { client, _ in
            for (method, uri, body) in Self.routes(op: "op-0") {
                for token in [nil, "wrong", ""] as [String?] {
                    let reply = try await Self.call(client, method, uri, body, token: token)
                    #expect(reply.status == .unauthorized, "\(method) \(uri) token \(token ?? "none")")
                    #expect(reply.json["code"] as? String == "unauthorized")
                }
            }
        }
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        let method: HTTPRequest.Method
        let uri: String
        let body: String?
        let status: Int
        let code: String
        let field: String?
        var testDescription: String { "\(method) \(uri) \(body ?? "")" }
    }

    static let bad: [Bad] = [
        Bad(method: .post, uri: "/v1/nodes", body: #"{"name":"n 2","address":"x"}"#, status: 422, code: "invalid", field: "name"),
        Bad(method: .post, uri: "/v1/nodes", body: #"{"name":"n1","address":"x"}"#, status: 409, code: "already_exists", field: "name"),
        Bad(method: .post, uri: "/v1/nodes", body: #"{"name":"n3"}"#, status: 400, code: "malformed", field: "address"),
        Bad(method: .get, uri: "/v1/nodes/nope", body: nil, status: 404, code: "not_found", field: nil),
        Bad(method: .put, uri: "/v1/nodes/n1/maintenance", body: #"{"enabled":"yes"}"#, status: 400, code: "malformed", field: "enabled"),
        Bad(method: .get, uri: "/v1/vms?limit=0", body: nil, status: 422, code: "invalid", field: "limit"),
        Bad(method: .get, uri: "/v1/vms?observed_state=dancing", body: nil, status: 422, code: "invalid", field: "observed_state"),
        Bad(method: .post, uri: "/v1/vms", body: "{not json", status: 400, code: "malformed", field: ""),
        Bad(method: .post, uri: "/v1/vms", body: #"{"spec":{"name":"x","cpus":{"boot_vcpus":0},"memory":{"size":"256M"},"payload":{"kernel":"/k"}}}"#,
            status: 422, code: "invalid", field: "spec.cpus.boot_vcpus"),
        Bad(method: .post, uri: "/v1/vms", body: #"{"spec":{"name":"x","cpus":{"boot_vcpus":1},"memory":{"size":"256M"},"payload":{"kernel":"/k"},"nics":[{"id":"n","kind":"tap","mtu":70000}]}}"#,
            status: 422, code: "invalid", field: "spec.nics[0].mtu"),
        Bad(method: .post, uri: "/v1/vms", body: #"{"spec":{"name":"x","cpus":{"boot_vcpus":1},"memory":{"size":"256M"},"payload":{"kernel":"/k"},"nics":[{"id":"n","kind":"wifi"}]}}"#,
            status: 400, code: "malformed", field: "spec.nics[0].kind"),
        Bad(method: .post, uri: "/v1/vms", body: #"{"spec":{"name":"x","cpus":{"boot_vcpus":1},"memory":{"size":"256M"},"payload":{"kernel":"/k"}},"colour":"red"}"#,
            status: 400, code: "malformed", field: "colour"),
        Bad(method: .post, uri: "/v1/vms", body: vmBody, status: 409, code: "already_exists", field: "spec.name"),
        Bad(method: .get, uri: "/v1/vms/nope", body: nil, status: 404, code: "not_found", field: nil),
        Bad(method: .delete, uri: "/v1/vms/nope", body: nil, status: 404, code: "not_found", field: nil),
        Bad(method: .post, uri: "/v1/vms/web/pause", body: nil, status: 409, code: "conflict", field: nil),
        Bad(method: .post, uri: "/v1/vms/web/resume", body: nil, status: 409, code: "conflict", field: nil),
        Bad(method: .post, uri: "/v1/vms/web/reboot", body: nil, status: 409, code: "conflict", field: nil),
        Bad(method: .post, uri: "/v1/vms/nope/start", body: nil, status: 404, code: "not_found", field: nil),
        Bad(method: .post, uri: "/v1/vms/nope/stop", body: nil, status: 404, code: "not_found", field: nil),
        Bad(method: .post, uri: "/v1/vms/web/nics", body: #"{"nic":{"id":"net0","kind":"tap"}}"#, status: 409, code: "already_exists", field: "nic.id"),
        Bad(method: .post, uri: "/v1/vms/web/nics", body: #"{"nic":{"id":"net9","kind":"tap","mtu":10}}"#, status: 422, code: "invalid", field: "nic.mtu"),
        Bad(method: .post, uri: "/v1/vms/web/disks", body: #"{"disk":{"id":"d1","path":"relative"}}"#, status: 422, code: "invalid", field: "disk.path"),
        Bad(method: .post, uri: "/v1/vms/web/disks", body: #"{"disk":{"id":"d1"},"image":"nope"}"#, status: 404, code: "not_found", field: nil),
        Bad(method: .get, uri: "/v1/vms/web/console", body: nil, status: 409, code: "conflict", field: nil),
        Bad(method: .get, uri: "/v1/vms/web/console?bytes=x", body: nil, status: 422, code: "invalid", field: "bytes"),
        Bad(method: .post, uri: "/v1/images", body: #"{"name":"i","kind":"rom","path":"/x"}"#, status: 400, code: "malformed", field: "kind"),
        Bad(method: .post, uri: "/v1/images", body: #"{"name":"i","kind":"disk","path":"/x","sha256":"abc"}"#, status: 422, code: "invalid", field: "sha256"),
        Bad(method: .get, uri: "/v1/networks?node=nope", body: nil, status: 404, code: "not_found", field: nil),
        Bad(method: .post, uri: "/v1/networks", body: #"{"name":"prod","node":"n1","kind":"bridge","parent":"br0"}"#, status: 409, code: "already_exists", field: "name"),
        Bad(method: .post, uri: "/v1/networks", body: #"{"name":"x","node":"nope","kind":"bridge","parent":"br0"}"#, status: 422, code: "invalid", field: "node"),
        Bad(method: .post, uri: "/v1/networks", body: #"{"name":"x","node":"n1","kind":"bridge","parent":"br0","mtu":9999999}"#, status: 422, code: "invalid", field: "mtu"),
        Bad(method: .post, uri: "/v1/rate-limit-groups", body: #"{"name":"x","rate_limiter":{}}"#, status: 422, code: "invalid", field: "rate_limiter"),
        Bad(method: .post, uri: "/v1/rate-limit-groups", body: #"{"name":"x","rate_limiter":{"ops":{"size":0,"refill_time":1}}}"#, status: 422, code: "invalid", field: "rate_limiter.ops.size"),
        Bad(method: .get, uri: "/v1/operations/nope", body: nil, status: 404, code: "not_found", field: nil),
        Bad(method: .get, uri: "/v1/events?since=-1", body: nil, status: 422, code: "invalid", field: "since"),
        Bad(method: .get, uri: "/v1/nothing", body: nil, status: 404, code: "not_found", field: nil),
    ]

    @Test(arguments: bad)
    func badInputIsA4xxNamingTheField(_ bad: Bad) async throws {
        try await Self.withAPI { client, _ in
            let created = try await Self.call(client, .post, "/v1/vms", Self.vmBody)
            #expect(created.status == .created)
            let reply = try await Self.call(client, bad.method, bad.uri, bad.body)
            #expect(reply.status.code == bad.status, "\(reply.body)")
            #expect(reply.json["code"] as? String == bad.code, "\(reply.body)")
            if let field = bad.field { #expect(reply.json["field"] as? String == field, "\(reply.body)") }
            #expect(reply.json["message"] is String)
        }
    }

    @Test func oversizedBodyIs413() async throws {
        try await Self.withAPI { client, _ in
            let huge = #"{"name":"n2","address":""# + String(repeating: "x", count: APIRoutes.bodyLimit) + #""}"#
            let reply = try await Self.call(client, .post, "/v1/nodes", huge)
            #expect(reply.status.code == 413)
            #expect(reply.json["code"] as? String == "body_too_large")
        }
    }

    @Test func idempotencyKeyReplaysAndRefusesReuse() async throws {
        try await Self.withAPI { client, _ in
            let one = try await Self.call(client, .post, "/v1/vms", Self.vmBody, key: "k-1")
            let two = try await Self.call(client, .post, "/v1/vms", Self.vmBody, key: "k-1")
            #expect(one.status == .created && two.status == .created)
            #expect((one.json["vm"] as? [String: Any])?["id"] as? String == (two.json["vm"] as? [String: Any])?["id"] as? String)
            let other = Self.vmBody.replacingOccurrences(of: "\"web\"", with: "\"web3\"")
            let reused = try await Self.call(client, .post, "/v1/vms", other, key: "k-1")
            #expect(reused.status.code == 409)
            #expect(reused.json["code"] as? String == "idempotency_key_reused")
            #expect(reused.json["field"] as? String == "Idempotency-Key")
        }
    }

    @Test func noPlacementNamesEachNode() async throws {
        try await Self.withAPI { client, _ in
            let body = #"{"spec":{"name":"big","cpus":{"boot_vcpus":64},"memory":{"size":"256M"},"payload":{"kernel":"/k"}}}"#
            #expect(try await Self.call(client, .post, "/v1/vms", body).status == .created)
            let reply = try await Self.call(client, .post, "/v1/vms/big/start")
            #expect(reply.status.code == 409)
            #expect(reply.json["code"] as? String == "no_placement")
            #expect((reply.json["message"] as? String)?.contains("n1: needs 64 vCPUs, 16 available") == true, "\(reply.body)")
        }
    }

    @Test func openAPIDocumentMatchesTheRouter() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let router = APIRoutes.router(service: try makeService(dir), token: "t")
        let served = Set(router.routes.map { "\($0.method.rawValue) \($0.path.description)" })
        let document = try JSONSerialization.jsonObject(with: try OpenAPIDocument.data()) as? [String: Any]
        #expect(document?["openapi"] as? String == "3.1.0")
        let paths = document?["paths"] as? [String: [String: Any]] ?? [:]
        var documented = Set<String>()
        for (path, item) in paths {
            for method in item.keys where ["get", "put", "post", "delete", "patch"].contains(method) {
                documented.insert("\(method.uppercased()) \(path)")
            }
        }
        #expect(served.subtracting(documented).sorted() == [], "served but not documented")
        #expect(documented.subtracting(served).sorted() == [], "documented but not served")
        // The committed copy is the bundled one.
        let committed = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/openapi.json")
        #expect(try Data(contentsOf: committed) == (try OpenAPIDocument.data()))
    }
}
