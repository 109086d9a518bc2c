public import Foundation
import VMModel
#if canImport(Glibc)
import Glibc
#endif

/// The node's request handling, independent of the transport: a ``NodeRequest`` in, a
/// ``NodeResponse`` out, through the ``NodeRuntime``.
public struct NodeService: Sendable {
    public let runtime: NodeRuntime

    public init(runtime: NodeRuntime) {
        self.runtime = runtime
    }

    /// The most console bytes in one answer.
    public static let consoleChunkLimit = 512 << 10
    /// How long a followed console request with nothing new waits for the log to grow.
    public static let followWait: Duration = .seconds(5)

    /// Handles one request. A followed console with nothing new waits (at most ``followWait``) for
    /// the log to grow before answering.
    public func handle(_ request: NodeRequest) async -> NodeResponse {
        do throws(NodeError) {
            switch request {
            case .create(let spec):
                let vm = try await runtime.create(spec)
                return .vm(await report(vm))
            case .start(let name):
                try await runtime.start(name)
                return .vm(await report(try await runtime.vm(name)))
            case .stop(let name):
                try await runtime.stop(name)
                return .vm(await report(try await runtime.vm(name)))
            case .pause(let name):
                try await runtime.pause(name)
                return .vm(await report(try await runtime.vm(name)))
            case .resume(let name):
                try await runtime.resume(name)
                return .vm(await report(try await runtime.vm(name)))
            case .reboot(let name):
                try await runtime.reboot(name)
                return .vm(await report(try await runtime.vm(name)))
            case .powerButton(let name):
                try await runtime.powerButton(name)
                return .vm(await report(try await runtime.vm(name)))
            case .delete(let name):
                try await runtime.delete(name)
                return .ok
            case .info(let name):
                return .vm(await report(try await runtime.vm(name), askVMM: true))
            case .list:
                var reports: [VMReport] = []
                for status in await runtime.list() {
                    reports.append(await report(try await runtime.vm(status.id)))
                }
                return .vms(reports)
            case .console(let name, let offset, let follow):
                guard offset >= 0 else {
                    return .error(NodeServiceError(code: .invalidRequest, message: "console offset \(offset) is negative"))
                }
                let chunk = try await consoleChunk(name: name, offset: offset)
                guard follow, case .console(_, _, let bytes) = chunk, bytes.isEmpty else { return chunk }
                let path = try await serialLog(of: name)
                await HostPreparation.onHostThread { ConsoleGrowth.wait(path: path, beyond: offset, limit: Self.followWait) }
                return try await consoleChunk(name: name, offset: offset)
            }
        } catch {
            return .error(NodeServiceError(error))
        }
    }

    /// The console log of `name` from `offset` (at most ``consoleChunkLimit`` bytes),
    /// read on a dedicated thread.
    public func consoleChunk(name: String, offset: Int64) async throws(NodeError) -> NodeResponse {
        let path = await (try runtime.vm(name)).status.serialLog
        let bytes = await HostPreparation.onHostThread { Self.read(path: path, offset: offset, limit: Self.consoleChunkLimit) }
        return .console(offset: offset, next: offset + Int64(bytes.count), bytes: bytes)
    }

    /// The serial log's path of `name`, for transports that watch it.
    public func serialLog(of name: String) async throws(NodeError) -> String {
        await (try runtime.vm(name)).status.serialLog
    }

    /// Up to `limit` bytes of the file at `path` from `offset` (empty when it does not exist yet).
    public static func read(path: String, offset: Int64, limit: Int) -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return Data() }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: limit)
        var filled = 0
        while filled < limit {
            let count = buffer.withUnsafeMutableBytes { raw in
                pread(fd, raw.baseAddress.map { $0 + filled }, limit - filled, off_t(offset) + off_t(filled))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            filled += count
        }
        return Data(buffer.prefix(filled))
    }

    /// A VM as reported to clients; with `askVMM`, the VMM's own state too when it runs.
    func report(_ vm: VMInstance, askVMM: Bool = false) async -> VMReport {
        let status = await vm.status
        var vmmState: String?
        if askVMM, [.running, .paused].contains(status.state.kind) {
            vmmState = try? await vm.info().vmmState
        }
        let spec = vm.spec
        return VMReport(id: status.id, name: status.name, backend: status.backend.rawValue, state: status.state.description,
                        failure: status.state.failure?.description, pid: status.vmmProcess?.pid, vmmState: vmmState,
                        vcpus: spec.cpus.bootVCPUs, memoryBytes: spec.memory.size.bytes, nics: spec.nics.count,
                        disks: spec.disks.count, runtimeDirectory: status.runtimeDirectory, serialLog: status.serialLog)
    }
}
