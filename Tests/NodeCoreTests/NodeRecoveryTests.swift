import Foundation
import LinuxSys
import NetPlumbing
@testable import NodeCore
import Testing
import VMModel
#if canImport(Glibc)
import Glibc
#endif

/// What a restarted node does with what a crashed one left on disk and on the host.
@Suite("Node recovery from a crash between the spawn and the process record", .enabled(if: nodeTestsCanRun, nodeTestsReason))
struct NodeCrashWindowTests {
    @Test("no supervisor record: a restarted node kills the VMM it finds in the VM's cgroup and releases everything")
    func unrecordedVMMIsKilled() async throws {
        try await NodeFixture.run { fixture, node in
            let vm = try await node.create(fixture.spec("window", nics: [NICSpec(id: "net0", kind: .tap)]))
            try await vm.start()
            let process = try #require(await vm.status.vmmProcess)
            fixture.track(process.pid)
            await node.detach()
            // What a node that died right after the spawn leaves behind: the VMM in the VM's cgroup,
            // the host record written before the spawn, and no process record yet.
            let processRecord = fixture.configuration.supervisorDirectory + "/\(vm.id).json"
            #expect(unlink(processRecord) == 0)
            #expect(FileManager.default.fileExists(atPath: fixture.configuration.vmRecordDirectory + "/hosts/\(vm.id).json"))

            let (restarted, recovery) = try await NodeRuntime.open(configuration: fixture.configuration, backend: fixture.backend)
            #expect(recovery.adopted.isEmpty)
            #expect(recovery.killed == [vm.id])
            #expect(recovery.orphaned == [vm.id])
            // The VMM is still this test process's child: reap it and see how it ended.
            var status: Int32 = 0
            #expect(waitpid(process.pid, &status, 0) == process.pid)
            #expect(status & 0x7f == SIGKILL, "killed, status \(status)")
            let again = try await restarted.vm(vm.id)
            #expect(await again.state == .created)
            #expect(await again.status.vmmProcess == nil)
            let link = HostPreparation.linkName(vmID: vm.id, nicID: "net0", kind: .tap)
            await #expect(throws: NetPlumbingError.self) { _ = try await NetPlumbing().link(link, in: fixture.namespace) }
            let leftovers = LeakCheck(netns: fixture.namespaceName, cgroupPrefix: fixture.prefix).scopedLeftovers()
            #expect(leftovers.isEmpty, "\(leftovers)")
            #expect(!FileManager.default.fileExists(atPath: fixture.configuration.vmRecordDirectory + "/hosts/\(vm.id).json"))

            // The VM itself is intact: it boots again.
            try await restarted.start(vm.id)
            fixture.track(await again.status.vmmProcess?.pid)
            #expect(await again.state == .running)
            try await restarted.delete(vm.id)
        }
    }
}

@Suite("VM records: a synced definition, an unsynced host record per kernel boot")
struct VMRecordStoreTests {
    static func spec(_ name: String) -> VMSpec {
        VMSpec(name: name, cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(64)),
               payload: PayloadSpec(kernel: "/nonexistent/vmlinux"))
    }

    static func host(_ id: String) -> PreparedHostRecord {
        PreparedHostRecord(vmID: id, runtimeRoot: "/run/qarax-test", cgroupName: id,
                           links: [PreparedLink(nicID: "net0", name: "qxt00000001", kind: .tap, deviceDirectory: nil)])
    }

    @Test("the definition and this boot's host record load together; removal takes both")
    func roundTrip() async throws {
        let directory = try makeTemporaryDirectory("vmrecords")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try VMRecordStore(directory: directory)
        try await store.write(VMRecord(id: "a", spec: Self.spec("a"), backend: .cloudHypervisor, host: Self.host("a")))
        #expect(await store.loadAll().records.first?.host == nil, "the definition never carries the host")
        try await store.writeHost(Self.host("a"))
        let (records, corrupt) = await store.loadAll()
        #expect(corrupt.isEmpty)
        #expect(records == [VMRecord(id: "a", spec: Self.spec("a"), backend: .cloudHypervisor, host: Self.host("a"))])
        try await store.remove("a")
        #expect(listDirectory(directory) == ["hosts"])
        #expect(listDirectory(directory + "/hosts").isEmpty)
    }

    @Test("a host record of an earlier kernel boot, or a torn one, is ignored and removed", arguments: [
        #"{"bootID":"00000000-0000-0000-0000-000000000000","host":{"vmID":"b","runtimeRoot":"/run/x","cgroupName":"b","links":[]}}"#,
        #"{"bootID":"#,
    ])
    func staleHostRecord(content: String) async throws {
        let directory = try makeTemporaryDirectory("vmrecords-stale")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try VMRecordStore(directory: directory)
        try await store.write(VMRecord(id: "b", spec: Self.spec("b"), backend: .qemu, host: nil))
        let path = store.hostPath("b")
        #expect(FileManager.default.createFile(atPath: path, contents: Data(content.utf8)))
        let (records, corrupt) = await store.loadAll()
        #expect(corrupt.isEmpty)
        #expect(records.map(\.id) == ["b"])
        #expect(records.first?.host == nil)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("a definition written before host records had their own file keeps its host")
    func legacyDefinitionWithHost() async throws {
        let directory = try makeTemporaryDirectory("vmrecords-legacy")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try VMRecordStore(directory: directory)
        let legacy = VMRecord(id: "c", spec: Self.spec("c"), backend: .cloudHypervisor, host: Self.host("c"))
        #expect(FileManager.default.createFile(atPath: store.definitionPath("c"), contents: try JSONEncoder().encode(legacy)))
        #expect(await store.loadAll().records == [legacy])
    }
}
