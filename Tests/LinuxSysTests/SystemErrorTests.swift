import Glibc
import Testing
@testable import LinuxSys

@Suite struct SystemErrorTests {
    @Test func keepsErrnoAndNamesIt() {
        let e = SystemError("open /nonexistent", errno: ENOENT)
        #expect(e.errno == ENOENT)
        #expect(e.errnoName == "ENOENT")
        #expect(e.description.hasPrefix("open /nonexistent: No such file or directory (ENOENT)"))
        #expect(SystemError.name(of: 9999) == "errno 9999")
    }

    @Test func openFailureCarriesErrno() {
        #expect(throws: SystemError("open /nonexistent/x", errno: ENOENT)) {
            _ = try FileDescriptor.open("/nonexistent/x", O_RDONLY)
        }
    }

    @Test func descriptorClosesOnDeinit() throws {
        let raw: Int32
        do {
            let fd = try FileDescriptor.open("/dev/null", O_RDONLY)
            raw = fd.rawValue
            #expect(fcntl(raw, F_GETFD) & FD_CLOEXEC != 0)
        }
        #expect(fcntl(raw, F_GETFD) == -1 && errno == EBADF)
    }

    @Test func takeTransfersOwnership() throws {
        let fd = try FileDescriptor.open("/dev/null", O_RDONLY)
        let raw = fd.take()
        #expect(fcntl(raw, F_GETFD) >= 0)
        close(raw)
    }
}
