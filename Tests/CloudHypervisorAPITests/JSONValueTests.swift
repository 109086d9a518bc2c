import Foundation
import Testing
import CloudHypervisorAPI

@Suite struct JSONValueTests {
    @Test func keepsIntegersBooleansAndDoublesApart() throws {
        let value = try JSONValue(json: Data(#"{"a": 1, "b": true, "c": 1.5, "d": 18446744073709551615, "e": -3, "f": null, "g": ["x"]}"#.utf8))
        #expect(value["a"] == .integer(1))
        #expect(value["b"] == .bool(true))
        #expect(value["c"] == .double(1.5))
        #expect(value["d"] == .unsignedInteger(UInt64.max))
        #expect(value["e"] == .integer(-3))
        #expect(value["f"] == .null)
        #expect(value["g"] == .array([.string("x")]))
        #expect(value.description == #"{"a":1,"b":true,"c":1.5,"d":18446744073709551615,"e":-3,"f":null,"g":["x"]}"#)
    }

    @Test func rejectsMalformedJSON() {
        #expect(throws: (any Error).self) { try JSONValue(json: Data("{\"a\":".utf8)) }
    }
}
