import Testing
@testable import NodeCore

@Suite struct NodeVersionTests {
    @Test func versionIsSemantic() {
        let parts = NodeVersion.current.split(separator: ".")
        #expect(parts.count == 3 && parts.allSatisfy { Int($0) != nil })
    }
}
