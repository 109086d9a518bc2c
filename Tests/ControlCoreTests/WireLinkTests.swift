import ClusterPKI
import Foundation
import Testing
@testable import ControlCore
import VMModel
import Wire

/// The control daemon's node port with nodes speaking the real Wire protocol over loopback.
@Suite("Node links over Wire")
struct WireLinkTests {
    /// A cluster CA with the control daemon's certificate and nodes' certificates.
    struct PKI {
        let dir: String

        init(_ root: TempDir, nodes: [String]) throws {
            dir = root.path + "/pki"
            try ClusterPKI.initCA(dir: dir)
            try ClusterPKI.issueControl(dir: dir)
            for node in nodes { try ClusterPKI.issueNode(name: node, dir: dir) }
        }

        func security(_ name: String) -> WireSecurity { .mutualTLS(WireTLSFiles(directory: dir, name: name)) }
    }

    /// A node port served for `service` until `body` returns.
    static func withNodePort<T: Sendable>(_ service: ControlService, security: WireSecurity, port: Int = 0,
                                          _ body: (WireEndpoint) async throws -> T) async throws -> T {
        let configuration = NodeListenerConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port), security: security)
        var bound = try? await NodeListener.bind(configuration, warn: { _ in })
        // A fixed port may briefly collide with a parallel test's ephemeral port: retry until the deadline.
        let end = ContinuousClock.now + .seconds(20)
        while bound == nil && port != 0 && ContinuousClock.now < end {
            await Task.yield()
            bound = try? await NodeListener.bind(configuration, warn: { _ in })
        }
        let listener: WireListener
        if let bound {
            listener = bound
        } else {
            listener = try await NodeListener.bind(configuration, warn: { _ in })
        }
        let serving = Task { try await NodeListener.serve(listener, service: service, log: { _ in }) }
        let endpoint = WireEndpoint.tcp(host: "127.0.0.1", port: listener.port ?? port)
        // Stopping the port drops every node connection, as a daemon exiting would.
        func stop() async {
            serving.cancel()
            await listener.close()
            _ = await serving.result
        }
        do {
            let result = try await body(endpoint)
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }

    @Test func aNodeOverMutualTLSIsRegisteredAndCarriesOutVMOperations() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let pki = try PKI(dir, nodes: ["node-1"])
        let service = try makeService(dir)
        let node = WireTestNode(name: "node-1")
        try await Self.withNodePort(service, security: pki.security("qarax-control")) { endpoint async throws in
            let dialing = Task { await node.run(endpoint: endpoint, security: pki.security("node-1")) }
            defer { dialing.cancel() }
            #expect(try await eventually(wakeOn: [service.changes]) { try await service.listNodes().first?.status == .up })
            let record = try await service.node("node-1")
            #expect(record.inventory?.cpus == 8)
            #expect(record.inventory?.vmms == [.init(backend: .cloudHypervisor, version: "48.0")])
            #expect(record.address.hasPrefix("127.0.0.1:"))

            let (vm, _) = try await service.createVM(CreateVMBody(spec: sampleSpec("web"), start: true), idempotencyKey: nil)
            await service.processPendingOperations()
            #expect(try await eventually(wakeOn: [service.changes]) { try await service.vm("web").observedState == .running })
            #expect(node.vms[vm.id] == .running)
            #expect(node.requests.prefix(2) == ["create \(vm.id)", "start \(vm.id)"])

            _ = try await service.act("web", .stop, idempotencyKey: nil)
            await service.processPendingOperations()
            #expect(try await eventually(wakeOn: [service.changes]) { try await service.vm("web").observedState == .stopped })
            #expect(node.vms[vm.id] == .stopped)

            _ = try await service.deleteVM("web", idempotencyKey: nil)
            await service.processPendingOperations()
            #expect(try await eventually(wakeOn: [service.changes]) { node.vms[vm.id] == nil })
            #expect(try await eventually(wakeOn: [service.changes]) { (try? await service.vm("web")) == nil })
        }
    }

    @Test func aNodeWhoseCertificateNamesAnotherNodeIsRefused() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let pki = try PKI(dir, nodes: ["node-1", "node-2"])
        let service = try makeService(dir)
        try await Self.withNodePort(service, security: pki.security("qarax-control")) { endpoint async throws in
            // Claims to be node-1 with node-2's certificate.
            let files = WireTLSFiles(directory: pki.dir, name: "node-2")
            let local = WireLocalIdentity(role: .node, name: "node-1", node: WireTestNode.inventory())
            let dialer = WireDialer(endpoint: endpoint, security: .mutualTLS(files), local: local,
                                    expectedPeerRoles: [.control], warn: { _ in })
            await #expect(throws: (any Error).self) { _ = try await dialer.connect() }
            #expect(try await service.listNodes().isEmpty)
        }
    }

    @Test func aReconnectingNodeIsReconciledAgainstWhatItReports() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let service = try makeService(dir)
        // Desired: "web" running and "old" deleted on node-1; the node reports "web" stopped and "old" running.
        let first = WireTestNode(name: "node-1")
        let ids = try await Self.withNodePort(service, security: .insecurePlaintext) { endpoint async throws in
            let dialing = Task { await first.run(endpoint: endpoint, security: .insecurePlaintext) }
            defer { dialing.cancel() }
            #expect(try await eventually(wakeOn: [service.changes]) { try await service.listNodes().first?.status == .up })
            let (web, _) = try await service.createVM(CreateVMBody(spec: sampleSpec("web"), start: true), idempotencyKey: nil)
            let (old, _) = try await service.createVM(CreateVMBody(spec: sampleSpec("old"), start: true), idempotencyKey: nil)
            await service.processPendingOperations()
            #expect(try await eventually(wakeOn: [service.changes]) { first.vms[web.id] == .running && first.vms[old.id] == .running })
            return (web: web.id, old: old.id)
        }
        // The link is gone: delete "old" while the node is away (the operation waits for the node).
        _ = try await service.deleteVM("old", idempotencyKey: nil)
        let second = WireTestNode(name: "node-1", vms: [ids.web: .stopped, ids.old: .running])
        try await Self.withNodePort(service, security: .insecurePlaintext) { endpoint async throws in
            let dialing = Task { await second.run(endpoint: endpoint, security: .insecurePlaintext) }
            defer { dialing.cancel() }
            #expect(try await eventually(wakeOn: [service.changes]) { second.vms[ids.web] == .running && second.vms[ids.old] == nil })
            #expect(try await eventually(wakeOn: [service.changes]) { try await service.vm("web").observedState == .running })
            #expect(try await eventually(wakeOn: [service.changes]) { (try? await service.vm("old")) == nil })
        }
    }

    @Test func afterAControlRestartTheNodeReconnectsAndItsVMsAreReportedAsTheyAre() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let node = WireTestNode(name: "node-1")
        // A fixed port, so the node's reconnector finds the restarted daemon where it left it.
        let probe = try await NodeListener.bind(
            NodeListenerConfiguration(endpoint: .tcp(host: "127.0.0.1", port: 0), security: .insecurePlaintext), warn: { _ in })
        let port = probe.port ?? 0
        await probe.close()
        let endpoint = WireEndpoint.tcp(host: "127.0.0.1", port: port)
        let dialing = Task { await node.run(endpoint: endpoint, security: .insecurePlaintext) }
        defer { dialing.cancel() }

        let vmID = try await {
            let service = try makeService(dir)
            try await service.recoverAfterStart()
            return try await Self.withNodePort(service, security: .insecurePlaintext, port: port) { _ async throws in
                #expect(try await eventually(wakeOn: [service.changes]) { try await service.listNodes().first?.status == .up })
                let (vm, _) = try await service.createVM(CreateVMBody(spec: sampleSpec("web"), start: true), idempotencyKey: nil)
                await service.processPendingOperations()
                #expect(try await eventually(wakeOn: [service.changes]) { try await service.vm("web").observedState == .running })
                return vm.id
            }
        }()
        let connectionsBefore = node.connections
        // A new daemon on the same inventory file and port: the VM is unknown until the node reports it.
        let restarted = try makeService(dir)
        try await restarted.recoverAfterStart()
        #expect(try await restarted.vm("web").observedState == .unknown)
        try await Self.withNodePort(restarted, security: .insecurePlaintext, port: port) { _ async throws in
            #expect(try await eventually(wakeOn: [restarted.changes]) { node.connections > connectionsBefore })
            #expect(try await eventually(wakeOn: [restarted.changes]) { try await restarted.vm("web").observedState == .running })
            #expect(try await eventually(wakeOn: [restarted.changes]) { try await restarted.node("node-1").status == .up })
        }
        #expect(node.vms[vmID] == .running)
        #expect(node.requests.filter { $0.hasPrefix("create") }.count == 1)
    }
}
