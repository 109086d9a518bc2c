import Dispatch
import Glibc
import Testing
import LinuxSys
@testable import NodeCore

@Suite struct LogRotationTests {
    @Test(arguments: [(1, 1), (10, 1), (100, 3), (4096, 4), (1000, 10)])
    func rotatedFilesNeverHoldMoreThanTheCap(maxFileBytes: Int, fileCount: Int) throws {
        let dir = try makeTemporaryDirectory("rotate")
        defer { removeTree(dir) }
        let rotation = try LogRotation(maxFileBytes: maxFileBytes, fileCount: fileCount)
        let file = try RotatingLogFile(path: "\(dir)/console.log", rotation: rotation)
        var generator = SystemRandomNumberGenerator()
        var written = 0
        var last: UInt8 = 0
        for _ in 0..<200 {
            let chunk = (0..<Int.random(in: 1...(3 * maxFileBytes), using: &generator)).map { _ in
                last &+= 1
                return last
            }
            try chunk.withUnsafeBytes { try file.write($0) }
            written += chunk.count
            let names = listDirectory(dir)
            let total = names.compactMap { fileSize("\(dir)/\($0)") }.reduce(0, +)
            #expect(total <= rotation.totalBytes)
            #expect(names.count <= fileCount)
            #expect(names.allSatisfy { (fileSize("\(dir)/\($0)") ?? 0) <= maxFileBytes })
        }
        // The newest bytes survive: the current file ends with the last byte written.
        let current = try readBytes("\(dir)/console.log")
        #expect(current.last == last)
        #expect(written > rotation.totalBytes)
    }

    @Test func rotationValuesBelowOneAreRejected() {
        #expect(throws: SupervisorError.invalidValue(field: "rotation.maxFileBytes", value: "0", reason: "must be at least 1")) {
            try LogRotation(maxFileBytes: 0, fileCount: 2)
        }
        #expect(throws: SupervisorError.invalidValue(field: "rotation.fileCount", value: "-1", reason: "must be at least 1")) {
            try LogRotation(maxFileBytes: 10, fileCount: -1)
        }
    }

    /// A stalled writer (a suspended queue standing in for a slow disk) never blocks `append`;
    /// what does not fit is dropped and marked once the writer catches up.
    @Test func fullBufferDropsAndMarksInsteadOfBlocking() async throws {
        let dir = try makeTemporaryDirectory("drop")
        defer { removeTree(dir) }
        let queue = DispatchQueue(label: "test.stalled-disk")
        queue.suspend()
        let log = try ConsoleLog(path: "\(dir)/console.log", rotation: .standard, bufferLimit: 100, queue: queue)
        let bytes = [UInt8](repeating: UInt8(ascii: "x"), count: 40)
        for _ in 0..<25 { bytes.withUnsafeBytes { log.append($0) } }
        #expect(log.droppedBytes == 900)
        queue.resume()
        await log.flush()
        Array("after\n".utf8).withUnsafeBytes { log.append($0) }
        await log.flush()
        let text = String(decoding: try readBytes("\(dir)/console.log"), as: UTF8.self)
        #expect(text == String(repeating: "x", count: 100) + "\n[qarax: dropped 900 bytes]\nafter\n")
    }
}

func readBytes(_ path: String) throws -> [UInt8] {
    let fd = try FileDescriptor.open(path, O_RDONLY)
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd.rawValue, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw SystemError("read \(path)", errno: errno) }
        if n == 0 { return bytes }
        bytes.append(contentsOf: chunk[0..<n])
    }
}
