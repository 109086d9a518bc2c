/// One problem with one field of a user-supplied description: which field, what it held, why
/// that is wrong. Rendered as `spawn.uid: 4294967295 is the invalid id (uid_t)-1`.
public struct FieldIssue: Hashable, Sendable, CustomStringConvertible {
    /// Path of the field, e.g. `spawn.fileDescriptors[3]` or `rules[2].args[0].op`.
    public let field: String
    /// The offending value, rendered for humans.
    public let value: String
    /// Why it is refused.
    public let reason: String

    public init(field: String, value: String, reason: String) {
        self.field = field
        self.value = value
        self.reason = reason
    }

    public var description: String { "\(field): \(value) \(reason)" }
}
