import Foundation
public import VMModel
import LinuxSys
#if canImport(Glibc)
import Glibc
#endif

/// The node's record of one VM: what it is, which backend runs it, and the host resources of its
/// current boot (nil when none are held). The VMM's identity lives in the supervisor's record of
/// the same id.
public struct VMRecord: Hashable, Sendable, Codable {
    public let id: String
    public let spec: VMSpec
    public let backend: VMMKind
    public let host: PreparedHostRecord?

    public init(id: String, spec: VMSpec, backend: VMMKind, host: PreparedHostRecord?) {
        self.id = id
        self.spec = spec
        self.backend = backend
        self.host = host
    }
}

/// The host resources of a VM's current boot, stamped with the kernel boot they belong to.
struct HostRecordFile: Codable {
    let bootID: String?
    let host: PreparedHostRecord
}

/// The node's VM records, in two files per VM with two durability classes:
///
/// - `<id>.json`, the definition (specification and backend): it must survive a power loss, so it
///   is written atomically **and synced** (temporary file, fsync, rename, fsync of the directory).
///   It is written when the VM is created, never on the boot path.
/// - `hosts/<id>.json`, the host resources of the current boot (cgroup, links, runtime root): written
///   atomically (temporary file, rename) **without fsync**, before the VMM is spawned. Everything it
///   names ends with the kernel, so it only has to survive a crash of the node daemon, and a
///   completed `write` does (it is in the page cache). It carries the kernel's boot id: after a
///   reboot it is ignored and removed, and a copy torn by a power loss is just as harmless. Syncing
///   it would cost two journal commits on every boot for no case that needs them.
///
/// All file work runs on the host-preparation queue, never on the cooperative pool.
struct VMRecordStore: Sendable {
    let directory: String

    init(directory: String) throws(SystemError) {
        self.directory = directory
        try HostFiles.makeDirectories(directory + "/hosts", mode: 0o700)
    }

    func definitionPath(_ id: String) -> String { "\(directory)/\(id).json" }
    func hostPath(_ id: String) -> String { "\(directory)/hosts/\(id).json" }

    /// Writes the VM's definition durably (its `host` is not part of it).
    func write(_ record: VMRecord) async throws(SystemError) {
        let definition = VMRecord(id: record.id, spec: record.spec, backend: record.backend, host: nil)
        let path = definitionPath(record.id)
        let directory = self.directory
        let failure = await HostPreparation.onHostThread { () -> SystemError? in
            guard let data = Self.encode(definition) else {
                return SystemError("encode the record of \(definition.id)", errno: EINVAL)
            }
            return Self.replace(path, with: data, syncingIn: directory)
        }
        if let failure { throw failure }
    }

    /// Records the host resources of the VM's current boot (crash-consistent, not synced).
    func writeHost(_ host: PreparedHostRecord) async throws(SystemError) {
        let file = HostRecordFile(bootID: KernelBoot.id, host: host)
        let path = hostPath(host.vmID)
        let failure = await HostPreparation.onHostThread { () -> SystemError? in
            guard let data = Self.encode(file) else {
                return SystemError("encode the host record of \(host.vmID)", errno: EINVAL)
            }
            return Self.replace(path, with: data, syncingIn: nil)
        }
        if let failure { throw failure }
    }

    /// Forgets the host resources of the VM's last boot.
    func removeHost(_ id: String) async throws(SystemError) {
        let path = hostPath(id)
        let failure = await HostPreparation.onHostThread { () -> SystemError? in
            unlink(path) == 0 || errno == ENOENT ? nil : SystemError("unlink \(path)", errno: errno)
        }
        if let failure { throw failure }
    }

    /// Removes both files of the VM.
    func remove(_ id: String) async throws(SystemError) {
        let paths = [hostPath(id), definitionPath(id)]
        let failure = await HostPreparation.onHostThread { () -> SystemError? in
            for path in paths where unlink(path) != 0 && errno != ENOENT {
                return SystemError("unlink \(path)", errno: errno)
            }
            return nil
        }
        if let failure { throw failure }
    }

    /// Every record (with the host resources of its boot when they belong to this kernel boot), and
    /// the files that could not be read. Host records of an earlier boot are removed.
    func loadAll() async -> (records: [VMRecord], corrupt: [String]) {
        let directory = self.directory
        return await HostPreparation.onHostThread {
            var records: [VMRecord] = []
            var corrupt: [String] = []
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for name in names.sorted() where name.hasSuffix(".json") && !name.hasPrefix(".") {
                let path = "\(directory)/\(name)"
                guard let data = FileManager.default.contents(atPath: path),
                      let record = try? JSONDecoder().decode(VMRecord.self, from: data) else {
                    corrupt.append(path)
                    continue
                }
                // A definition written before host records had their own file may still carry one.
                var host = record.host
                let hostFile = self.hostPath(record.id)
                if let data = FileManager.default.contents(atPath: hostFile) {
                    if let file = try? JSONDecoder().decode(HostRecordFile.self, from: data),
                       file.host.vmID == record.id, file.bootID == nil || file.bootID == KernelBoot.id {
                        host = file.host
                    } else {
                        // An earlier boot's (its cgroups and links died with that kernel), or torn.
                        unlink(hostFile)
                    }
                }
                records.append(VMRecord(id: record.id, spec: record.spec, backend: record.backend, host: host))
            }
            return (records, corrupt)
        }
    }

    private static func encode(_ value: some Encodable) -> Data? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try? encoder.encode(value)
    }

    /// Replaces `path` atomically with `data` (temporary file, rename); with `syncingIn`, also
    /// durably (the file before the rename, the directory after it).
    private static func replace(_ path: String, with data: Data, syncingIn directory: String?) -> SystemError? {
        let slash = path.lastIndex(of: "/") ?? path.startIndex
        let temporary = String(path[..<slash]) + "/." + String(path[path.index(after: slash)...]) + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return SystemError("open \(temporary)", errno: errno) }
        var offset = 0
        var failed: Int32 = 0
        data.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failed = errno
                    return
                }
                offset += n
            }
        }
        if failed == 0, directory != nil, fsync(fd) != 0 { failed = errno }
        close(fd)
        if failed == 0, rename(temporary, path) != 0 { failed = errno }
        if failed != 0 {
            unlink(temporary)
            return SystemError("write \(path)", errno: failed)
        }
        if let directory {
            let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard dir >= 0 else { return SystemError("open \(directory)", errno: errno) }
            defer { close(dir) }
            if fsync(dir) != 0 { return SystemError("fsync \(directory)", errno: errno) }
        }
        return nil
    }
}
