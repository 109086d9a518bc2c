import Foundation
public import VMModel
import LinuxSys
#if canImport(Glibc)
import Glibc
#endif

/// The node's durable record of one VM: what it is, which backend runs it, and the host resources
/// of its current boot (nil when none are held). The VMM's identity lives in the supervisor's
/// record of the same id.
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

/// `<directory>/<vm-id>.json`, written atomically (temporary file, fsync, rename, fsync of the
/// directory) on a dedicated queue, never on the cooperative pool.
struct VMRecordStore: Sendable {
    let directory: String

    init(directory: String) throws(SystemError) {
        self.directory = directory
        try HostFiles.makeDirectories(directory, mode: 0o700)
    }

    func write(_ record: VMRecord) async throws(SystemError) {
        let directory = self.directory
        let result = await HostPreparation.onHostThread { () -> SystemError? in
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                let data = try encoder.encode(record)
                let final = "\(directory)/\(record.id).json"
                let temporary = "\(directory)/.\(record.id).json.tmp"
                let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                guard fd >= 0 else { return SystemError("open \(temporary)", errno: errno) }
                let written = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                let synced = fsync(fd)
                close(fd)
                guard written == data.count, synced == 0, rename(temporary, final) == 0 else {
                    let code = errno
                    unlink(temporary)
                    return SystemError("write \(final)", errno: code == 0 ? EIO : code)
                }
                let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                if dir >= 0 {
                    fsync(dir)
                    close(dir)
                }
                return nil
            } catch {
                return SystemError("encode the record of \(record.id)", errno: EINVAL)
            }
        }
        if let result { throw result }
    }

    func remove(_ id: String) async throws(SystemError) {
        let path = "\(directory)/\(id).json"
        let failure = await HostPreparation.onHostThread { () -> SystemError? in
            unlink(path) == 0 || errno == ENOENT ? nil : SystemError("unlink \(path)", errno: errno)
        }
        if let failure { throw failure }
    }

    /// Every record, and the files that could not be read.
    func loadAll() async -> (records: [VMRecord], corrupt: [String]) {
        let directory = self.directory
        return await HostPreparation.onHostThread {
            var records: [VMRecord] = []
            var corrupt: [String] = []
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for name in names.sorted() where name.hasSuffix(".json") && !name.hasPrefix(".") {
                let path = "\(directory)/\(name)"
                if let data = FileManager.default.contents(atPath: path),
                   let record = try? JSONDecoder().decode(VMRecord.self, from: data) {
                    records.append(record)
                } else {
                    corrupt.append(path)
                }
            }
            return (records, corrupt)
        }
    }
}

