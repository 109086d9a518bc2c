#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
public import LinuxSys

/// The record of one supervised process, one JSON file per VM in the state directory.
public struct SupervisedVM: Sendable, Hashable, Codable {
    public let vmID: String
    public let identity: ProcessIdentity
    /// Output name → log file path.
    public let logs: [String: String]
    /// The cgroup OOM-kill counter when supervision began, if a probe was given.
    public let oomKillsAtStart: UInt64?
    /// The kernel boot the process ran in (``KernelBoot/id``); nil in records that predate it.
    public let bootID: String?

    public init(vmID: String, identity: ProcessIdentity, logs: [String: String], oomKillsAtStart: UInt64?,
                bootID: String? = KernelBoot.id) {
        self.vmID = vmID
        self.identity = identity
        self.logs = logs
        self.oomKillsAtStart = oomKillsAtStart
        self.bootID = bootID
    }

    /// Whether the record was written in an earlier kernel boot: its process cannot exist any more,
    /// whatever now runs with its pid and start time.
    var isFromEarlierBoot: Bool {
        guard let bootID, let current = KernelBoot.id else { return false }
        return bootID != current
    }
}

/// Reads and writes `<directory>/<vmID>.json`, atomically (temporary file, then rename) but
/// without `fsync`.
///
/// A record describes a process, and no process outlives the kernel: what must survive is a crash
/// of the node daemon, and a completed `write` is in the page cache for the next daemon whether
/// or not it reached the disk. Syncing would only protect the record against a power loss, after
/// which there is nothing left for it to describe — and it would put two journal commits (file and
/// directory, 2–6 ms here) on every boot's critical path. A record that reappears or is lost after a
/// power loss is harmless: it carries the kernel's boot id, so ``Supervisor/adopt`` retires it.
struct SupervisorStateStore: Sendable {
    let directory: String

    init(directory: String) throws(SupervisorError) {
        self.directory = directory
        if mkdir(directory, 0o700) < 0 && Glibc.errno != EEXIST {
            throw .system(SystemError("mkdir \(directory)", errno: Glibc.errno))
        }
    }

    func path(of vmID: String) -> String { "\(directory)/\(vmID).json" }

    func write(_ record: SupervisedVM) throws(SupervisorError) {
        let data: Data
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            data = try encoder.encode(record)
        } catch {
            throw .invalidValue(field: "state record", value: record.vmID, reason: "cannot be encoded: \(error)")
        }
        let final = path(of: record.vmID)
        let temporary = "\(directory)/.\(record.vmID).json.tmp"
        do throws(SystemError) {
            let fd = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
            let failed = [UInt8](data).withUnsafeBytes { raw -> Int32 in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.write(fd.rawValue, raw.baseAddress.map { $0 + offset }, raw.count - offset)
                    if n < 0 {
                        if Glibc.errno == EINTR { continue }
                        return Glibc.errno
                    }
                    offset += n
                }
                return 0
            }
            if failed != 0 { throw SystemError("write \(temporary)", errno: failed) }
            try fd.close()
            if rename(temporary, final) < 0 { throw SystemError("rename \(temporary)", errno: Glibc.errno) }
        } catch {
            _ = unlink(temporary)
            throw .system(error)
        }
    }

    func remove(_ vmID: String) throws(SupervisorError) {
        if unlink(path(of: vmID)) < 0 && Glibc.errno != ENOENT {
            throw .system(SystemError("unlink \(path(of: vmID))", errno: Glibc.errno))
        }
    }

    /// Every record in the directory; undecodable files are reported, not deleted.
    func loadAll() throws(SupervisorError) -> (records: [SupervisedVM], corrupt: [SupervisorError]) {
        guard let dir = opendir(directory) else {
            throw .system(SystemError("opendir \(directory)", errno: Glibc.errno))
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".json") && !name.hasPrefix(".") { names.append(name) }
        }
        var records: [SupervisedVM] = []
        var corrupt: [SupervisorError] = []
        for name in names.sorted() {
            let file = "\(directory)/\(name)"
            do {
                let text = try readProcFile(file)
                let record = try JSONDecoder().decode(SupervisedVM.self, from: Data(text.utf8))
                guard "\(record.vmID).json" == name else {
                    corrupt.append(.corruptRecord(path: file, reason: "vmID \(record.vmID) does not match the file name"))
                    continue
                }
                records.append(record)
            } catch {
                corrupt.append(.corruptRecord(path: file, reason: "\(error)"))
            }
        }
        return (records, corrupt)
    }
}
