public import LinuxSys
public import VMModel

#if canImport(Glibc)
import Glibc
#endif

/// Why a VM's host files could not be prepared.
public enum HostPreparationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The VM id cannot name a directory safely.
    case invalidVMID(String)
    /// A client-mode vhost-user backend socket is missing (the backend must listen before boot).
    case vhostUserBackendMissing(device: String, path: String)
    /// The vhost-user backend path exists but is not a Unix socket.
    case vhostUserNotASocket(device: String, path: String)
    /// A file-system call failed.
    case system(SystemError)

    public var description: String {
        switch self {
        case .invalidVMID(let id):
            "vm id \(id.debugDescription): not usable as a directory name (1-64 of A-Z a-z 0-9 . _ -, not . or ..)"
        case .vhostUserBackendMissing(let device, let path):
            "\(device).vhost_socket: \(path) does not exist: in client mode the vhost-user backend must listen there before the vm boots"
        case .vhostUserNotASocket(let device, let path):
            "\(device).vhost_socket: \(path) is not a Unix socket"
        case .system(let error):
            "\(error)"
        }
    }
}

/// One VM's directory under the node's runtime root (`/run/qarax/vms/<vm-id>`): the API socket,
/// the event log, console logs, the durable state file, and two subdirectories the VMM writes in.
///
/// Layout and ownership (the node runs as root, each VMM under its own uid):
/// - `<root>/<vm-id>/` — root, `0700`; `0711` when a VMM owner is given, so the VMM's uid may
///   traverse into its own subdirectories (and nothing else: it can neither list nor open the
///   node's files, which are `0600`).
/// - `vmm/` — owned by the VMM's uid, `0700`: files and sockets the VMM creates (console and
///   serial files or sockets, the vsock socket).
/// - `vhost-user/` — owned by the VMM's uid, `0700`: server-mode vhost-user sockets the VMM
///   listens on.
/// Removed whole on delete.
public struct VMRuntimeDirectory: Hashable, Sendable {
    /// The node's default runtime root.
    public static let defaultRoot = "/run/qarax/vms"

    public let vmID: String
    public let root: String
    /// `<root>/<vm-id>`
    public let path: String

    /// The uid and gid a VMM runs under.
    public struct Owner: Hashable, Sendable {
        public var uid: UInt32
        public var gid: UInt32

        public init(uid: UInt32, gid: UInt32) {
            self.uid = uid
            self.gid = gid
        }
    }

    /// `vmID` must be 1-64 characters of `A-Z a-z 0-9 . _ -`, and not `.` or `..`.
    public init(vmID: String, root: String = VMRuntimeDirectory.defaultRoot) throws(HostPreparationError) {
        let allowed = vmID.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard allowed, (1...64).contains(vmID.utf8.count), vmID != ".", vmID != ".." else { throw .invalidVMID(vmID) }
        self.vmID = vmID
        self.root = root
        self.path = root.hasSuffix("/") ? root + vmID : root + "/" + vmID
    }

    /// The VMM's API socket (bound by the node, handed over as a descriptor).
    public var apiSocket: String { path + "/api.sock" }
    /// A copy of the VMM's event stream.
    public var eventLog: String { path + "/events.log" }
    /// The VMM's own log (its standard error).
    public var vmmLog: String { path + "/vmm.log" }
    /// The node's durable record of the VM.
    public var stateFile: String { path + "/state.json" }
    /// Where the VMM creates its files.
    public var vmmDirectory: String { path + "/vmm" }
    /// The serial port's output, when it goes to a file the node chose.
    public var serialLog: String { vmmDirectory + "/serial.log" }
    /// The virtio console's output, when it goes to a file the node chose.
    public var consoleLog: String { vmmDirectory + "/console.log" }
    /// The vsock device's host-side socket, when the spec names none.
    public var vsockSocket: String { vmmDirectory + "/vsock.sock" }
    /// Where server-mode vhost-user sockets go.
    public var vhostUserDirectory: String { path + "/vhost-user" }

    /// Creates the directory tree (idempotent: an existing tree gets its owners and modes set
    /// again, a symlink in place of a directory is refused).
    public func create(vmmOwner: Owner?) throws(HostPreparationError) {
        do {
            try HostFiles.makeDirectories(root, mode: 0o711)
            try HostFiles.ownedDirectory(path, mode: vmmOwner == nil ? 0o700 : 0o711, uid: 0, gid: 0)
            let owner = vmmOwner ?? Owner(uid: 0, gid: 0)
            try HostFiles.ownedDirectory(vmmDirectory, mode: 0o700, uid: owner.uid, gid: owner.gid)
            try HostFiles.ownedDirectory(vhostUserDirectory, mode: 0o700, uid: owner.uid, gid: owner.gid)
        } catch {
            throw .system(error)
        }
    }

    /// Removes the whole tree; a missing tree is fine.
    public func remove() throws(HostPreparationError) {
        do { try HostFiles.removeTree(path) } catch { throw .system(error) }
    }

    /// Whether the directory exists.
    public var exists: Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}

/// One vhost-user connection of a VM: which device, who listens, and the socket path the VMM
/// gets.
public struct VhostUserEndpoint: Hashable, Sendable {
    /// The device's field path and id, e.g. `nics[1]` and `net1`.
    public var field: String
    public var deviceID: String
    public var mode: NICSpec.VhostMode
    /// Client mode: the backend's socket, which exists. Server mode: where the VMM listens, in
    /// the VM's vhost-user directory.
    public var socketPath: String

    public init(field: String, deviceID: String, mode: NICSpec.VhostMode, socketPath: String) {
        self.field = field
        self.deviceID = deviceID
        self.mode = mode
        self.socketPath = socketPath
    }
}

extension VMRuntimeDirectory {
    /// The vhost-user endpoints of `spec`'s NICs and disks, checked:
    /// - client mode (all vhost-user disks, and NICs unless `server`): the backend's socket must
    ///   exist and be a Unix socket — the error names the device and the path;
    /// - server mode: the VMM creates `<vhost-user directory>/<device id>.sock`; a stale socket
    ///   left there by an earlier run is removed.
    public func vhostUserEndpoints(for spec: VMSpec) throws(HostPreparationError) -> [VhostUserEndpoint] {
        var endpoints: [VhostUserEndpoint] = []
        for (index, disk) in spec.disks.enumerated() where disk.vhostUser {
            guard let socket = disk.vhostSocket else { continue }
            let field = "disks[\(index)]"
            try checkBackend(socket, device: field)
            endpoints.append(VhostUserEndpoint(field: field, deviceID: disk.id, mode: .client, socketPath: socket))
        }
        for (index, nic) in spec.nics.enumerated() where nic.kind == .vhostUser {
            let field = "nics[\(index)]"
            switch nic.vhostMode ?? .client {
            case .client:
                guard let socket = nic.vhostSocket else { continue }
                try checkBackend(socket, device: field)
                endpoints.append(VhostUserEndpoint(field: field, deviceID: nic.id, mode: .client, socketPath: socket))
            case .server:
                let socket = "\(vhostUserDirectory)/\(nic.id).sock"
                if unlink(socket) != 0 && errno != ENOENT {
                    throw .system(SystemError("unlink stale \(socket)", errno: errno))
                }
                endpoints.append(VhostUserEndpoint(field: field, deviceID: nic.id, mode: .server, socketPath: socket))
            }
        }
        return endpoints
    }

    private func checkBackend(_ path: String, device: String) throws(HostPreparationError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw .vhostUserBackendMissing(device: device, path: path) }
            throw .system(SystemError("stat \(device).vhost_socket \(path)", errno: code))
        }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else { throw .vhostUserNotASocket(device: device, path: path) }
    }
}
