import Foundation
import Glibc
import NodeCore
import Testing
import VMModel

private let isRoot = getuid() == 0
private let vmmUID: UInt32 = 40123
private let otherUID: UInt32 = 40124

/// A runtime root of its own per test, removed at the end.
private func withRoot<T>(_ body: (String) throws -> T) throws -> T {
    let root = "/tmp/qarax-rt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))/vms"
    defer { _ = LeakCheck.run(["/bin/rm", "-rf", String(root.dropLast(4))]) }
    return try body(root)
}

private func mode(_ path: String) -> (mode: UInt32, uid: UInt32, gid: UInt32, type: UInt32)? {
    var info = stat()
    guard lstat(path, &info) == 0 else { return nil }
    return (info.st_mode & 0o7777, info.st_uid, info.st_gid, info.st_mode & S_IFMT)
}

/// Runs `argv` as `uid` (setpriv) and returns its exit status.
private func runAs(_ uid: UInt32, _ argv: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
    process.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--"] + argv
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

private func spec(nics: [NICSpec] = [], disks: [DiskSpec] = []) -> VMSpec {
    VMSpec(name: "web1", cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(256), shared: true),
           payload: PayloadSpec(kernel: "/srv/images/vmlinux"), disks: disks, nics: nics)
}

@Suite("Per-VM runtime directory")
struct HostRuntimeDirectoryNamingTests {
    @Test("ids that cannot name a directory are refused", arguments: ["", ".", "..", "a/b", "../etc", "web 1", String(repeating: "a", count: 65), "vm\u{0}"])
    func invalidIDs(id: String) {
        #expect(throws: HostPreparationError.invalidVMID(id)) { try VMRuntimeDirectory(vmID: id) }
    }

    @Test("the layout under the default root")
    func layout() throws {
        let dir = try VMRuntimeDirectory(vmID: "web1")
        #expect(dir.path == "/run/qarax/vms/web1")
        #expect(dir.apiSocket == "/run/qarax/vms/web1/api.sock")
        #expect(dir.stateFile == "/run/qarax/vms/web1/state.json")
        #expect(dir.eventLog == "/run/qarax/vms/web1/events.log")
        #expect(dir.serialLog == "/run/qarax/vms/web1/vmm/serial.log")
        #expect(dir.consoleLog == "/run/qarax/vms/web1/vmm/console.log")
        #expect(dir.vhostUserDirectory == "/run/qarax/vms/web1/vhost-user")
    }

    @Test("messages name the device and the path")
    func messages() {
        #expect(HostPreparationError.vhostUserBackendMissing(device: "nics[1]", path: "/run/ovs/vhu1.sock").description
            == "nics[1].vhost_socket: /run/ovs/vhu1.sock does not exist: in client mode the vhost-user backend must listen there before the vm boots")
        #expect(HostPreparationError.vhostUserNotASocket(device: "disks[0]", path: "/srv/disk.img").description
            == "disks[0].vhost_socket: /srv/disk.img is not a Unix socket")
    }
}

@Suite("Per-VM runtime directory on the real file system", .enabled(if: isRoot, "needs root to set owners"))
struct HostRuntimeDirectoryTests {
    @Test("created with the VMM's uid on its subdirectories, modes exact, removed on delete, nothing left")
    func createAndRemove() throws {
        try withRoot { root in
            try LeakCheck(runtimeRoot: root).expectNoLeaks {
                let dir = try VMRuntimeDirectory(vmID: "web1", root: root)
                try dir.create(vmmOwner: .init(uid: vmmUID, gid: vmmUID))
                #expect(try #require(mode(dir.path)) == (0o711, 0, 0, S_IFDIR))
                #expect(try #require(mode(dir.vmmDirectory)) == (0o700, vmmUID, vmmUID, S_IFDIR))
                #expect(try #require(mode(dir.vhostUserDirectory)) == (0o700, vmmUID, vmmUID, S_IFDIR))

                try dir.create(vmmOwner: .init(uid: vmmUID, gid: vmmUID))  // idempotent
                try Data("{}".utf8).write(to: URL(fileURLWithPath: dir.stateFile))
                let api = try HostTestSocket(path: dir.apiSocket)
                api.close()
                try dir.remove()
                #expect(!dir.exists)
                try dir.remove()  // idempotent
            }
        }
    }

    @Test("without a VMM owner everything is root's and 0700")
    func rootOnly() throws {
        try withRoot { root in
            let dir = try VMRuntimeDirectory(vmID: "web1", root: root)
            try dir.create(vmmOwner: nil)
            defer { try? dir.remove() }
            #expect(try #require(mode(dir.path)) == (0o700, 0, 0, S_IFDIR))
            #expect(try #require(mode(dir.vmmDirectory)) == (0o700, 0, 0, S_IFDIR))
        }
    }

    @Test("the VMM's uid can create its sockets there; another uid cannot")
    func vmmCanWrite() throws {
        try withRoot { root in
            let dir = try VMRuntimeDirectory(vmID: "web1", root: root)
            try dir.create(vmmOwner: .init(uid: vmmUID, gid: vmmUID))
            defer { try? dir.remove() }
            let bind = { (path: String) in
                ["/usr/bin/python3", "-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path]
            }
            #expect(try runAs(vmmUID, bind("\(dir.vhostUserDirectory)/net0.sock")) == 0)
            #expect(mode("\(dir.vhostUserDirectory)/net0.sock")?.type == S_IFSOCK)
            #expect(try runAs(vmmUID, bind("\(dir.vmmDirectory)/vsock.sock")) == 0)
            #expect(try runAs(otherUID, bind("\(dir.vhostUserDirectory)/evil.sock")) != 0)
            #expect(try runAs(otherUID, bind("\(dir.path)/evil.sock")) != 0)
            #expect(try runAs(vmmUID, bind("\(dir.path)/api.sock")) != 0, "the top directory is the node's")
        }
    }

    @Test("a symlink planted where the VM's directory goes is refused, its target untouched")
    func symlinkRefused() throws {
        try withRoot { root in
            let target = "\(root)-target"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            defer { rmdir(target) }
            try #require(symlink(target, "\(root)/web1") == 0)
            let dir = try VMRuntimeDirectory(vmID: "web1", root: root)
            #expect { try dir.create(vmmOwner: nil) } throws: { error in
                guard case .system(let system) = error as? HostPreparationError else { return false }
                return system.errno == ELOOP || system.errno == ENOTDIR
            }
            try dir.remove()  // removes the link, not the target
            #expect(mode(target)?.type == S_IFDIR)
            #expect(mode("\(root)/web1") == nil)
        }
    }

    @Test("vhost-user client mode needs the backend's socket; server mode puts the VMM's in the VM's directory")
    func vhostUser() throws {
        try withRoot { root in
            let dir = try VMRuntimeDirectory(vmID: "web1", root: root)
            try dir.create(vmmOwner: .init(uid: vmmUID, gid: vmmUID))
            defer { try? dir.remove() }
            let backend = "\(root)/backend.sock"
            let missing = "\(root)/absent.sock"
            let regular = "\(root)/regular"
            try Data().write(to: URL(fileURLWithPath: regular))
            let listener = try HostTestSocket(path: backend)
            defer { listener.close(unlinking: backend) }

            let good = spec(
                nics: [
                    NICSpec(id: "net0", kind: .tap),
                    NICSpec(id: "net1", kind: .vhostUser, vhostSocket: backend),
                    NICSpec(id: "net2", kind: .vhostUser, vhostSocket: "/ignored/in/server/mode.sock", vhostMode: .server),
                ],
                disks: [DiskSpec(id: "disk0", vhostUser: true, vhostSocket: backend)])
            #expect(try dir.vhostUserEndpoints(for: good) == [
                VhostUserEndpoint(field: "disks[0]", deviceID: "disk0", mode: .client, socketPath: backend),
                VhostUserEndpoint(field: "nics[1]", deviceID: "net1", mode: .client, socketPath: backend),
                VhostUserEndpoint(field: "nics[2]", deviceID: "net2", mode: .server,
                                  socketPath: "\(dir.vhostUserDirectory)/net2.sock"),
            ])

            #expect(throws: HostPreparationError.vhostUserBackendMissing(device: "nics[1]", path: missing)) {
                try dir.vhostUserEndpoints(for: spec(nics: [
                    NICSpec(id: "net0", kind: .tap), NICSpec(id: "net1", kind: .vhostUser, vhostSocket: missing),
                ]))
            }
            #expect(throws: HostPreparationError.vhostUserNotASocket(device: "disks[0]", path: regular)) {
                try dir.vhostUserEndpoints(for: spec(disks: [DiskSpec(id: "d", vhostUser: true, vhostSocket: regular)]))
            }
        }
    }

    @Test("a stale server-mode socket from an earlier run is removed before the VMM binds again")
    func staleServerSocket() throws {
        try withRoot { root in
            let dir = try VMRuntimeDirectory(vmID: "web1", root: root)
            try dir.create(vmmOwner: nil)
            defer { try? dir.remove() }
            let stale = "\(dir.vhostUserDirectory)/net0.sock"
            HostTestSocket.leaveBehind(path: stale)
            #expect(mode(stale)?.type == S_IFSOCK)
            _ = try dir.vhostUserEndpoints(for: spec(nics: [
                NICSpec(id: "net0", kind: .vhostUser, vhostSocket: "/x.sock", vhostMode: .server),
            ]))
            #expect(mode(stale) == nil)
        }
    }
}

extension HostTestSocket {
    /// Binds and closes at once, leaving the socket file as a crashed VMM would.
    static func leaveBehind(path: String) {
        if let listener = try? HostTestSocket(path: path) { listener.close() }
    }
}
