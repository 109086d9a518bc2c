import Foundation
import VMModel

struct BodyKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue; intValue = nil }
    init(intValue: Int) { stringValue = String(intValue); self.intValue = intValue }
}

extension Decoder {
    /// The keyed container, after refusing keys `Keys` does not list (a typo must be an error).
    func strictBody<Keys: CodingKey & CaseIterable>(_: Keys.Type) throws -> KeyedDecodingContainer<Keys> {
        let all = try container(keyedBy: BodyKey.self)
        let known = Set(Keys.allCases.map(\.stringValue))
        if let unknown = all.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [BodyKey(stringValue: unknown)],
                debugDescription: "unknown key (expected one of: \(Keys.allCases.map(\.stringValue).joined(separator: ", ")))"))
        }
        return try container(keyedBy: Keys.self)
    }
}

/// Decodes a request body, turning decoding errors into a field path and a reason.
func decodeBody<T: Decodable>(_ type: T.Type, from data: Data) throws(ControlError) -> T {
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let error as DecodingError {
        let problem = SpecDecodingError(error)
        throw .malformed(FieldProblem(field: problem.field, reason: problem.reason))
    } catch {
        throw .malformed(FieldProblem(field: "", reason: "not valid JSON: \(error)"))
    }
}
