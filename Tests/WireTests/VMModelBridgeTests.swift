import Foundation
import Testing
import VMModel
@testable import Wire

@Suite("VM specifications inside messages")
struct VMModelBridgeTests {
    static let spec = VMSpec(name: "web", cpus: CPUSpec(bootVCPUs: 2), memory: MemorySpec(size: .mebibytes(256)),
                             payload: PayloadSpec(kernel: "/var/lib/qarax/vmlinux"))

    @Test("a VMSpec survives CreateVM → frame → CreateVM")
    func createRoundTrip() throws {
        let create = try WireCreateVM(spec: Self.spec, start: true)
        var request = WireRequest()
        request.op = .create(create)
        let frame = try WireEnvelope(requestID: 1, .request(request)).frame()
        guard case .request(let decoded) = try WireEnvelope(frame: frame).message,
              case .create(let carried) = decoded.op else {
            Issue.record("not a create request")
            return
        }
        #expect(try carried.spec() == Self.spec)
        #expect(carried.start)
    }

    @Test("a spec field the node does not know is an error naming it, mapped to INVALID_ARGUMENT")
    func unknownSpecField() throws {
        var create = try WireCreateVM(spec: Self.spec)
        var json = try #require(String(data: create.specJson, encoding: .utf8))
        json.removeLast()
        json += #","balloon":{"size":1}}"#
        create.specJson = Data(json.utf8)
        #expect {
            try create.spec()
        } throws: { error in
            let response = WireErrorMapping.response(for: error)
            return response.code == .invalidArgument && response.field.contains("balloon")
        }
    }

    @Test("hotplug NIC and disk specs round-trip; a bad one names its field under nic / disk")
    func hotplug() throws {
        let nic = NICSpec(id: "net1", kind: .tap, bridge: "br0")
        let add = try WireAddNIC(vm: "web", nic: nic)
        #expect(try add.nic() == nic)
        let disk = DiskSpec(id: "data", path: "/var/lib/qarax/data.raw")
        #expect(try WireAddDisk(vm: "web", disk: disk).disk() == disk)
        var bad = add
        bad.nicJson = Data(#"{"id":"net1","kind":"warp"}"#.utf8)
        #expect {
            try bad.nic()
        } throws: { error in
            (error as? SpecDecodingError)?.field.hasPrefix("nic") == true
        }
    }
}
