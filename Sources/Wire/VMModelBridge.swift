import Foundation
public import VMModel

extension WireCreateVM {
    /// A create request carrying `spec` as VMModel's canonical JSON.
    public init(spec: VMSpec, start: Bool = false) throws {
        self.init()
        self.specJson = try spec.encodedJSON()
        self.start = start
    }

    /// The carried specification, strictly decoded: a field the node does not know is an error
    /// naming it (a node cannot honour a setting it does not understand).
    public func spec() throws(SpecDecodingError) -> VMSpec {
        try VMSpec.decode(json: specJson)
    }
}

extension WireAddNIC {
    /// A NIC hotplug request carrying `nic` as VMModel JSON.
    public init(vm: String, nic: NICSpec) throws {
        self.init()
        self.vm = vm
        self.nicJson = try WireSpecJSON.encode(nic)
    }

    /// The carried NIC, strictly decoded; field paths start at `nic`.
    public func nic() throws(SpecDecodingError) -> NICSpec {
        try WireSpecJSON.decode(NICSpec.self, from: nicJson, field: "nic")
    }
}

extension WireAddDisk {
    /// A disk hotplug request carrying `disk` as VMModel JSON.
    public init(vm: String, disk: DiskSpec) throws {
        self.init()
        self.vm = vm
        self.diskJson = try WireSpecJSON.encode(disk)
    }

    /// The carried disk, strictly decoded; field paths start at `disk`.
    public func disk() throws(SpecDecodingError) -> DiskSpec {
        try WireSpecJSON.decode(DiskSpec.self, from: diskJson, field: "disk")
    }
}

extension WireEvent {
    /// The report a node sends after every (re)connect: all its VMs with their states.
    public static func inventory(_ vms: [WireVMStatus]) -> WireEvent {
        var report = WireVMInventoryReport()
        report.vms = vms
        var event = WireEvent()
        event.kind = .inventory(report)
        return event
    }
}

enum WireSpecJSON {
    static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data, field: String) throws(SpecDecodingError) -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            let inner = SpecDecodingError(error)
            throw SpecDecodingError(field: inner.field.isEmpty ? field : "\(field).\(inner.field)", reason: inner.reason)
        } catch {
            throw SpecDecodingError(field: field, reason: "not valid JSON: \(error)")
        }
    }
}
