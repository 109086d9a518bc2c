import Testing
@testable import NetPlumbing

@Suite struct InterfaceNameTests {
    @Test(arguments: ["tap0", "qx-vm1-net0", "eth.100", "a", "abcdefghijklmno"])
    func accepts(_ name: String) throws {
        #expect(try InterfaceName(name).rawValue == name)
    }

    @Test(arguments: [
        ("", "is empty"),
        ("abcdefghijklmnop", "is 16 bytes long; interface names have at most 15"),
        ("..", "is reserved"),
        ("tap/0", "contains '/'; allowed are letters, digits, '-', '_' and '.'"),
        ("tap 0", "contains byte 0x20; allowed are letters, digits, '-', '_' and '.'"),
        ("tap:0", "contains ':'; allowed are letters, digits, '-', '_' and '.'"),
    ])
    func rejects(_ name: String, _ reason: String) {
        #expect(throws: NetPlumbingError.invalidArgument(field: "name", value: name, reason: reason)) {
            _ = try InterfaceName(name)
        }
    }
}
