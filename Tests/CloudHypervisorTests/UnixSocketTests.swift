import CShims
import Foundation
import LinuxSys
import Testing
#if canImport(Glibc)
import Glibc
#endif

func temporaryDirectory() throws -> String {
    var chars = Array("/tmp/qx-unix-XXXXXX".utf8CString)
    guard mkdtemp(&chars) != nil else { throw SystemError("mkdtemp", errno: errno) }
    return String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func inode(_ fd: Int32) -> UInt {
    var st = stat()
    return fstat(fd, &st) == 0 ? UInt(st.st_ino) : 0
}

@Suite("Unix sockets")
struct UnixSocketTests {
    @Test func descriptorsTravelWithTheBytes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let listener = try UnixSocket.listen(path: dir + "/s")
        let client = try UnixSocket.connect(path: dir + "/s")
        let server = try UnixSocket.accept(listener)
        let a = qx_memfd_create("a", 0)
        let b = qx_memfd_create("b", 0)
        defer { close(a); close(b) }

        try UnixSocket.send(client, Array("hello".utf8), descriptors: [a, b])
        var received = try UnixSocket.receive(server)
        let bytes = received.bytes
        let truncated = received.descriptorsTruncated
        let fds = received.takeDescriptors()
        let numbers = fds.rawValues
        #expect(bytes == Array("hello".utf8))
        #expect(!truncated)
        #expect(numbers.map(inode) == [inode(a), inode(b)])
        // Received descriptors are close-on-exec.
        #expect(numbers.allSatisfy { fcntl($0, F_GETFD) & FD_CLOEXEC != 0 })
    }

    @Test func endOfStreamIsAnEmptyReceive() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let listener = try UnixSocket.listen(path: dir + "/s")
        let client = try UnixSocket.connect(path: dir + "/s")
        let server = try UnixSocket.accept(listener)
        try client.close()
        let received = try UnixSocket.receive(server)
        let bytes = received.bytes
        let count = received.descriptors.count
        #expect(bytes.isEmpty)
        #expect(count == 0)
    }

    @Test func connectingToNobodyKeepsTheErrno() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: SystemError("connect unix socket \(dir)/none", errno: ENOENT)) {
            _ = try UnixSocket.connect(path: dir + "/none")
        }
        let tooLong = "/tmp/" + String(repeating: "x", count: 200)
        #expect(throws: SystemError("bind+listen unix socket \(tooLong)", errno: ENAMETOOLONG)) {
            _ = try UnixSocket.listen(path: tooLong)
        }
    }

    @Test func tooManyDescriptorsAreRefused() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let listener = try UnixSocket.listen(path: dir + "/s")
        let client = try UnixSocket.connect(path: dir + "/s")
        _ = listener
        let many = [Int32](repeating: 0, count: UnixSocket.maxDescriptorsPerMessage + 1)
        #expect(throws: SystemError.self) { try UnixSocket.send(client, [1], descriptors: many) }
        // Descriptors need a byte to travel with.
        #expect(throws: SystemError.self) { try UnixSocket.send(client, [], descriptors: [0]) }
    }
}
