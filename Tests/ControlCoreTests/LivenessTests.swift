import Foundation
import GRDB
import Testing
@testable import ControlCore

@Suite("Liveness and node links")
struct LivenessTests {
    @Test func trackerExpiresAfterGrace() {
        var tracker = LivenessTracker(grace: .seconds(15))
        let t0 = ContinuousClock.now
        let first = tracker.heartbeat("a", at: t0)
        let second = tracker.heartbeat("a", at: t0 + .seconds(10))
        #expect(first && !second)
        let early = tracker.expire(at: t0 + .seconds(25))
        #expect(early == [])
        let late = tracker.expire(at: t0 + .seconds(25) + .milliseconds(1))
        #expect(late == ["a"])
        #expect(tracker.alive.isEmpty)
        let revived = tracker.heartbeat("a", at: t0 + .seconds(30))
        let closed = tracker.disconnected("a")
        let closedAgain = tracker.disconnected("a")
        #expect(revived && closed && !closedAgain)
    }

    @Test func heartbeatsStayInMemoryUntilFlushAndNodeGoesDownAfterGrace() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let clock = ManualClock()
        let service = try makeService(dir, clock: clock.controlClock, grace: .seconds(15))
        let link = TestNodeLink(name: "n1")
        let serving = Task { try await service.serve(link: link) }
        defer { link.close(); serving.cancel() }
        #expect(try await eventually(wakeOn: [service.changes]) { try await service.listNodes().first?.status == .up })
        let node = try await service.node("n1")

        let before = try await service.database.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM events") ?? 0 }
        for _ in 0..<50 { await service.registry.heartbeat(node.id) }
        let after = try await service.database.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM events") ?? 0 }
        #expect(before == after, "heartbeats wrote rows")

        clock.advance(by: .seconds(14))
        try await service.sweepLiveness()
        #expect(try await service.node("n1").status == .up)
        clock.advance(by: .seconds(2))
        try await service.sweepLiveness()
        #expect(try await service.node("n1").status == .down)
        let stored = try await service.database.pool.read { db in try NodeRecord.fetchOne(db, key: node.id) }
        #expect(stored?.status == .down)

        await service.registry.heartbeat(node.id)
        try await service.flushLiveness()
        let revived = try await service.database.pool.read { db in try NodeRecord.fetchOne(db, key: node.id) }
        #expect(revived?.status == .up)
    }

    @Test func maintenanceKeepsVMsButBlocksPlacement() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let service = try makeService(dir)
        let link = TestNodeLink(name: "n1")
        let serving = Task { try await service.serve(link: link) }
        defer { link.close(); serving.cancel() }
        #expect(try await eventually(wakeOn: [service.changes]) { try await service.listNodes().first?.status == .up })
        _ = try await service.createVM(CreateVMBody(spec: sampleSpec("web")), idempotencyKey: nil)
        _ = try await service.setMaintenance("n1", enabled: true)
        #expect(try await service.node("n1").status == .maintenance)
        await #expect(throws: ControlError.self) { try await service.act("web", .start, idempotencyKey: nil) }
        do {
            _ = try await service.act("web", .start, idempotencyKey: nil)
        } catch let error as ControlError {
            #expect(error.description == "no node can take the VM: n1: node is in maintenance")
        }
        _ = try await service.setMaintenance("n1", enabled: false)
        let op = try await service.act("web", .start, idempotencyKey: nil)
        await service.processPendingOperations()
        #expect(try await service.operation(op.id).status == .succeeded)
        #expect(try await service.vm("web").observedState == .running)
    }

    @Test func reconnectResyncsDesiredState() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let service = try makeService(dir)
        let first = TestNodeLink(name: "n1")
        let serving = Task { try await service.serve(link: first) }
        #expect(try await eventually(wakeOn: [service.changes]) { try await service.listNodes().first?.status == .up })
        let created = try await service.createVM(CreateVMBody(spec: sampleSpec("a"), start: true), idempotencyKey: "k1")
        await service.processPendingOperations()
        #expect(try await service.vm("a").observedState == .running)
        _ = try await service.createVM(CreateVMBody(spec: sampleSpec("b"), start: true), idempotencyKey: nil)
        await service.processPendingOperations()
        first.close()
        try await serving.value
        #expect(try await service.node("n1").status == .down)

        // While the node is away: stop "a", delete "b".
        let stop = try await service.act("a", .stop, idempotencyKey: nil)
        let delete = try await service.deleteVM("b", idempotencyKey: nil)
        await service.processPendingOperations()
        #expect(try await service.operation(stop.id).status == .pending)

        // The node comes back still running both VMs, plus one the control daemon never heard of.
        let bID = try await service.vm("b").id
        let second = TestNodeLink(name: "n1", vms: [ReportedVM(id: created.vm.id, state: .running),
                                                    ReportedVM(id: bID, state: .running),
                                                    ReportedVM(id: "stranger", state: .running)])
        let again = Task { try await service.serve(link: second) }
        defer { second.close(); again.cancel() }
        #expect(try await eventually(wakeOn: [service.changes]) { try await service.operation(stop.id).status == .succeeded })
        #expect(try await eventually(wakeOn: [service.changes]) { try await service.operation(delete.id).status == .succeeded })
        #expect(try await service.vm("a").observedState == .stopped)
        await #expect(throws: ControlError.self) { try await service.vm("b") }
        #expect(second.vms == [created.vm.id: .stopped, "stranger": .running])
    }

    @Test func idempotentRetriesReturnTheSameOperation() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let service = try makeService(dir)
        let body = CreateVMBody(spec: sampleSpec("web"))
        let one = try await service.createVM(body, idempotencyKey: "req-1")
        let two = try await service.createVM(body, idempotencyKey: "req-1")
        #expect(one.vm.id == two.vm.id)
        #expect(one.operation.id == two.operation.id)
        await #expect(throws: ControlError.idempotencyKeyReused(key: "req-1")) {
            try await service.createVM(CreateVMBody(spec: sampleSpec("other")), idempotencyKey: "req-1")
        }
        let stopA = try await service.act("web", .stop, idempotencyKey: "stop-1")
        let stopB = try await service.act("web", .stop, idempotencyKey: "stop-1")
        #expect(stopA.id == stopB.id)
    }
}
