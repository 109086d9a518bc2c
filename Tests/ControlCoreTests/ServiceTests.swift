import Foundation
import Testing
@testable import ControlCore
import VMModel

@Suite("Control service")
struct ServiceTests {
    /// A service with a connected test-double node and a network "prod" (bridge br0, MTU 9000) on it.
    static func withNode(_ body: (ControlService, TestNodeLink) async throws -> Void) async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let service = try makeService(dir)
        let link = TestNodeLink(name: "n1")
        let serving = Task { try await service.serve(link: link) }
        defer { link.close(); serving.cancel() }
        #expect(try await eventually(wakeOn: [service.changes]) { try await service.listNodes().first?.status == .up })
        _ = try await service.createNetwork(CreateNetworkBody(name: "prod", node: "n1", kind: .bridge, parent: "br0", mtu: 9000))
        try await body(service, link)
    }

    @Test func startPlacesBindsNetworksAndDefinesTheVMOnItsNode() async throws {
        try await Self.withNode { service, link in
            var spec = sampleSpec("web")
            spec.nics = [NICSpec(id: "net0", kind: .tap)]
            _ = try await service.createVM(CreateVMBody(spec: spec, networks: ["net0": "prod"]), idempotencyKey: nil)
            let op = try await service.act("web", .start, idempotencyKey: nil)
            #expect(op.status == .pending)
            await service.processPendingOperations()
            #expect(try await service.operation(op.id).status == .succeeded)
            let vm = try await service.vm("web")
            #expect(vm.nodeId == (try await service.node("n1")).id)
            #expect(vm.spec.nics.first?.bridge == "br0")
            #expect(vm.spec.nics.first?.mtu == 9000)
            guard case .createVM(let id, let defined, .cloudHypervisor) = link.calls.first else {
                Issue.record("first call was \(String(describing: link.calls.first))")
                return
            }
            #expect(id == vm.id && defined.nics.first?.bridge == "br0")
            #expect(link.calls.dropFirst().first == .startVM(id: vm.id))
            #expect(try await service.consoleTail("web", maxBytes: 100) == Array("READY \(vm.id)\n".utf8))
        }
    }

    @Test func aVMNeedingAMissingNetworkIsNotPlaced() async throws {
        try await Self.withNode { service, _ in
            var spec = sampleSpec("web")
            spec.nics = [NICSpec(id: "net0", kind: .tap)]
            _ = try await service.createVM(CreateVMBody(spec: spec, networks: ["net0": "storage"]), idempotencyKey: nil)
            await #expect(throws: ControlError.noPlacement(PlacementFailure(byNode: [.init(node: "n1", reasons: [.networks(missing: ["storage"])])]))) {
                try await service.act("web", .start, idempotencyKey: nil)
            }
        }
    }

    @Test func aNodeErrorFailsTheOperationWithItsMessage() async throws {
        try await Self.withNode { service, link in
            _ = try await service.createVM(CreateVMBody(spec: sampleSpec("web"), start: true), idempotencyKey: nil)
            await service.processPendingOperations()
            link.failNext(NodeCallError(code: "vmm_error", message: "reboot refused"))
            let op = try await service.act("web", .reboot, idempotencyKey: nil)
            await service.processPendingOperations()
            let failed = try await service.operation(op.id)
            #expect(failed.status == .failed)
            #expect(failed.errorCode == "node_error")
            #expect(failed.errorMessage == "vmm_error: reboot refused")
            #expect(failed.finishedAt != nil)
        }
    }

    @Test func nodeStateEventsAndBootTimesAreRecorded() async throws {
        try await Self.withNode { service, link in
            let created = try await service.createVM(CreateVMBody(spec: sampleSpec("web"), start: true), idempotencyKey: nil)
            await service.processPendingOperations()
            link.push(.bootTime(vm: created.vm.id, milliseconds: 6.5))
            link.push(.vmState(vm: created.vm.id, state: .failed))
            #expect(try await eventually(wakeOn: [service.changes]) { try await service.vm("web").observedState == .failed })
            #expect(try await service.vm("web").bootTimeMs == 6.5)
        }
    }

    @Test func listingFiltersAndPages() async throws {
        try await Self.withNode { service, _ in
            for i in 0..<7 { _ = try await service.createVM(CreateVMBody(spec: sampleSpec("vm\(i)")), idempotencyKey: nil) }
            _ = try await service.createVM(CreateVMBody(spec: sampleSpec("other")), idempotencyKey: nil)
            var names: [String] = []
            var token: String?
            repeat {
                let page = try await service.listVMs(VMFilter(namePrefix: "vm", limit: 3, pageToken: token))
                #expect(page.items.count <= 3)
                names += page.items.map(\.name)
                token = page.nextPageToken
            } while token != nil
            #expect(names == (0..<7).map { "vm\($0)" })
            let pending = try await service.listVMs(VMFilter(observedState: .pending))
            #expect(pending.items.count == 8)
            #expect(try await service.listVMs(VMFilter(namePrefix: "v_")).items.isEmpty)
        }
    }

    @Test func eventsAreReplayedAndStreamedLive() async throws {
        try await Self.withNode { service, _ in
            let live = service.events.subscribe()
            _ = try await service.createVM(CreateVMBody(spec: sampleSpec("web")), idempotencyKey: nil)
            var iterator = live.makeAsyncIterator()
            var seen: EventRecord?
            while let event = await iterator.next() {
                if event.action == "vm.create" { seen = event; break }
            }
            #expect(seen?.seq != nil)
            #expect(seen?.actor == "api")
            let replay = try await service.events(after: 0)
            #expect(replay.contains { $0.action == "node.connect" && $0.actor == "node:n1" })
            let seqs = replay.compactMap(\.seq)
            #expect(seqs.count == replay.count && seqs == seqs.sorted())
            #expect(replay.last?.seq == seen?.seq)
        }
    }

    @Test func metricsAreValidPrometheusText() async throws {
        try await Self.withNode { service, _ in
            _ = try await service.createVM(CreateVMBody(spec: sampleSpec("web")), idempotencyKey: nil)
            let text = try await service.metricsText()
            #expect(text.contains("qarax_node_up{node=\"n1\"} 1\n"))
            #expect(text.contains("qarax_nodes{status=\"UP\"} 1\n"))
            #expect(text.contains("qarax_vms{observed_state=\"pending\"} 1\n"))
            #expect(text.contains("qarax_operations{status=\"succeeded\"} 1\n"))
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                #expect(parts.count == 2 && Double(parts[1]) != nil, "\(line)")
            }
        }
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256Digest.hex(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256Digest.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var streamed = SHA256Digest()
        for chunk in Array(repeating: "a", count: 1000).chunked(7) { streamed.update(Array(chunk.joined().utf8)) }
        #expect(streamed.finalizeHex() == SHA256Digest.hex(Array(String(repeating: "a", count: 1000).utf8)))
        #expect(SHA256Digest.hex(Array(String(repeating: "a", count: 1_000_000).utf8))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

extension Array {
    func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}

@Suite("Hotplug")
struct HotplugTests {
    @Test func devicesAddedToARunningVMAreHotplugged() async throws {
        try await ServiceTests.withNode { service, link in
            let created = try await service.createVM(CreateVMBody(spec: sampleSpec("web"), start: true), idempotencyKey: nil)
            await service.processPendingOperations()
            let nic = try await service.addNIC("web", AddNICBody(nic: NICSpec(id: "net1", kind: .tap), network: "prod"),
                                               idempotencyKey: nil)
            let disk = try await service.addDisk("web", AddDiskBody(disk: DiskSpec(id: "d1", path: "/var/lib/d1.img")),
                                                 idempotencyKey: nil)
            #expect(nic.status == .pending && disk.status == .pending)
            await service.processPendingOperations()
            #expect(try await service.operation(nic.id).status == .succeeded)
            #expect(try await service.operation(disk.id).status == .succeeded)
            #expect(link.calls.contains(.addNIC(vm: created.vm.id, nic: NICSpec(id: "net1", kind: .tap))))
            #expect(link.calls.contains(.addDisk(vm: created.vm.id, disk: DiskSpec(id: "d1", path: "/var/lib/d1.img"))))
            let spec = try await service.vm("web").spec
            #expect(spec.nics.map(\.id) == ["net1"] && spec.disks.map(\.id) == ["d1"])
        }
    }

    @Test func devicesAddedToAStoppedVMOnlyChangeItsSpecification() async throws {
        try await ServiceTests.withNode { service, link in
            _ = try await service.createVM(CreateVMBody(spec: sampleSpec("web")), idempotencyKey: nil)
            let op = try await service.addDisk("web", AddDiskBody(disk: DiskSpec(id: "d1", path: "/var/lib/d1.img")),
                                               idempotencyKey: nil)
            #expect(op.status == .succeeded)
            #expect(link.calls.isEmpty)
        }
    }
}
