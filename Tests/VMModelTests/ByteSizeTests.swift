import Foundation
import Testing
import VMModel

@Suite struct ByteSizeTests {
    @Test(arguments: [
        ("4096", 4096), ("0", 0), ("512B", 512), ("4K", 4096), ("4KiB", 4096),
        ("256M", 256 << 20), ("512MiB", 512 << 20), ("2G", 2 << 30), ("2GiB", 2 << 30), ("1T", 1 << 40), ("3TiB", 3 << 40),
    ])
    func parsesBinaryUnits(text: String, bytes: Int) throws {
        #expect(try ByteSize(parsing: text).bytes == bytes)
    }

    @Test(arguments: [
        ("2GB", ByteSizeParseError.Problem.decimalUnit), ("512MB", .decimalUnit), ("1.5G", .notASize), ("G", .notASize),
        ("-1M", .notASize), (" 1M", .notASize), ("1M ", .notASize), ("1m", .notASize), ("", .notASize),
        ("99999999999999999999", .tooLarge), ("9000000000000T", .tooLarge),
    ])
    func rejectsOtherForms(text: String, problem: ByteSizeParseError.Problem) {
        #expect(throws: ByteSizeParseError(text: text, problem: problem)) { try ByteSize(parsing: text) }
    }

    @Test func decodesIntegersAndStringsAndEncodesBytes() throws {
        let decoded = try JSONDecoder().decode([ByteSize].self, from: Data(#"[1048576, "1M", "1MiB"]"#.utf8))
        #expect(decoded == [.mebibytes(1), .mebibytes(1), .mebibytes(1)])
        #expect(String(decoding: try JSONEncoder().encode(decoded), as: UTF8.self) == "[1048576,1048576,1048576]")
    }

    @Test(arguments: ["-5", "1.5", "true", "\"1 G\"", "null"])
    func rejectsNonSizes(json: String) {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([ByteSize].self, from: Data("[\(json)]".utf8)) }
    }

    @Test(arguments: [(ByteSize.gibibytes(1), "1 GiB"), (.mebibytes(1536), "1536 MiB"), (ByteSize(bytes: 1000), "1000 B"),
                      (ByteSize(bytes: 0), "0 B"), (.kibibytes(3), "3 KiB")])
    func describesInLargestExactUnit(size: ByteSize, text: String) {
        #expect(size.description == text)
    }
}

@Suite struct MACAddressTests {
    @Test(arguments: ["52:54:00:12:34:56", "AA:bb:CC:dd:EE:ff", "00:00:00:00:00:00"])
    func parses(text: String) throws {
        let mac = try #require(MACAddress(text))
        #expect(mac.description == text.lowercased())
    }

    @Test(arguments: ["52:54:00:12:34", "52:54:00:12:34:56:78", "52-54-00-12-34-56", "5:54:00:12:34:56",
                      "52:54:00:12:34:5g", "", "525400123456", "52:54:00:12:34:056"])
    func rejects(text: String) {
        #expect(MACAddress(text) == nil)
    }

    @Test func classifiesBits() throws {
        #expect(try #require(MACAddress("01:00:5e:00:00:01")).isMulticast)
        #expect(try #require(MACAddress("ff:ff:ff:ff:ff:ff")).isMulticast)
        #expect(try !#require(MACAddress("52:54:00:00:00:01")).isMulticast)
        #expect(try #require(MACAddress("02:00:00:00:00:01")).isLocallyAdministered)
        #expect(try #require(MACAddress("00:00:00:00:00:00")).isZero)
    }
}
