import Foundation
import Testing
import CloudHypervisorAPI

@Suite struct JSONValueTests {
    @Test func keepsIntegersBooleansAndDoublesApart() throws {
        let value = try JSONValue(json: Data(#"{"a": 1, "b": true, "c": 1.5, "d": 18446744073709551615, "e": -3, "f": null, "g": ["x"], "h": 1.0, "i": 1e2, "j": 100000000000000000000}"#.utf8))
        #expect(value["a"] == .integer(1))
        #expect(value["b"] == .bool(true))
        #expect(value["c"] == .double(1.5))
        #expect(value["d"] == .unsignedInteger(UInt64.max))
        #expect(value["e"] == .integer(-3))
        #expect(value["f"] == .null)
        #expect(value["g"] == .array([.string("x")]))
        #expect(value["h"] == .double(1.0))
        #expect(value["i"] == .double(100))
        #expect(value["j"] == .double(1e20))
    }

    @Test func decodesStringEscapes() throws {
        let value = try JSONValue(json: Data(#"["a\"b\\c\/d\b\f\n\r\t", "\u00e9\ud83d\ude00", "é😀"]"#.utf8))
        #expect(value == .array([.string("a\"b\\c/d\u{08}\u{0C}\n\r\t"), .string("é😀"), .string("é😀")]))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "-", "1.", "1e", ".5", "+1", "[1] x", "{'a': 1}", "\"\u{01}\"",
        #""\ud800""#, #""\ud800\u0041""#, #""\x""#, "tru", "nul", "NaN", "1e999", "{\"a\" 1}", "[1 2]",
        String(repeating: "[", count: 129) + String(repeating: "]", count: 129),
    ])
    func rejectsMalformedJSON(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(json: Data(text.utf8)) }
    }

    @Test func rejectsInvalidUTF8AndAcceptsMaximumDepth() throws {
        #expect(throws: JSONParseError.self) { try JSONValue(json: Data([0x22, 0xFF, 0x22])) }
        let deep = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(throws: Never.self) { try JSONValue(json: Data(deep.utf8)) }
    }

    @Test func encodesCompactSortedJSON() throws {
        let value = try JSONValue(json: Data(#"{"b": [1, 2.5, "x/y"], "a": {"z": null, "y": false}}"#.utf8))
        #expect(value.description == #"{"a":{"y":false,"z":null},"b":[1,2.5,"x/y"]}"#)
        #expect(try JSONValue(json: JSONEncoder().encode(value)) == value)
    }
}
