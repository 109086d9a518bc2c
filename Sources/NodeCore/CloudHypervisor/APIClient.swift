import Foundation
import LinuxSys
import Synchronization

/// A client of cloud-hypervisor's REST API: HTTP/1.1 over its Unix socket
/// (`http://localhost/api/v1/<call>`).
///
/// Each call opens its own connection and runs its blocking socket I/O on a dedicated thread,
/// never on Swift's cooperative pool. Every call has a deadline and the answer a size cap. A
/// non-success answer keeps CH's status and error chain (`CHError.api`). Request bodies are raw
/// JSON so any `Encodable` config type can be sent; small answers have typed helpers.
public final class CloudHypervisorClient: Sendable {
    /// The API socket's path.
    public let socketPath: String
    /// The default deadline of one call, from connect to the last byte of the answer.
    public let timeout: Duration
    /// The largest answer (status line, headers and body) accepted.
    public let maxResponseBytes: Int

    public init(socketPath: String, timeout: Duration = .seconds(10), maxResponseBytes: Int = 1 << 20) {
        self.socketPath = socketPath
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
    }

    // MARK: raw calls

    /// Sends one call and returns the answer when its status means success for `endpoint`.
    ///
    /// - Parameters:
    ///   - body: the JSON request body; `PUT` without a body still sends `Content-Length: 0`.
    ///   - descriptors: file descriptors passed with the request (`SCM_RIGHTS`); they stay owned
    ///     by the caller, who must keep them open until the call returns.
    ///   - timeout: overrides the client's default deadline.
    public func call(_ endpoint: CHEndpoint, body: [UInt8] = [], descriptors: [Int32] = [],
                     timeout: Duration? = nil) async throws(CHError) -> CHResponse {
        let response = try await exchange(endpoint, body: body, descriptors: descriptors, timeout: timeout)
        guard endpoint.successStatuses.contains(response.status) else {
            throw Self.failure(endpoint, response)
        }
        return response
    }

    /// Sends one call and returns whatever status came back (no success check).
    public func exchange(_ endpoint: CHEndpoint, body: [UInt8] = [], descriptors: [Int32] = [],
                         timeout: Duration? = nil) async throws(CHError) -> CHResponse {
        let request = HTTPExchange.Request(
            call: endpoint.rawValue, isGet: endpoint.isGet, path: endpoint.path, body: body,
            descriptors: descriptors, socketPath: socketPath,
            deadline: ContinuousClock.now + (timeout ?? self.timeout), maxResponseBytes: maxResponseBytes)
        let canceller = HTTPExchange.Canceller()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<CHResponse, CHError>, Never>) in
                let thread = Thread {
                    continuation.resume(returning: HTTPExchange.run(request, canceller: canceller))
                }
                thread.name = "ch-api \(endpoint.rawValue)"
                thread.start()
            }
        } onCancel: {
            canceller.cancel()
        }
        return try result.get()
    }

    // MARK: typed calls

    /// `vmm.ping`: the VMM's version; answers as soon as the API thread runs.
    public func ping() async throws(CHError) -> CHVmmPing {
        try decode(CHVmmPing.self, from: await call(.vmmPing), call: .vmmPing)
    }

    /// `vm.create` with a `VmConfig` JSON body. CH accepts bodies the document calls invalid
    /// (e.g. without `payload`) and checks paths only at boot: validate before calling.
    public func create(config: [UInt8]) async throws(CHError) { _ = try await call(.vmCreate, body: config) }
    /// `vm.create` with any `Encodable` config (e.g. a `VmConfig`), encoded as JSON.
    public func create(_ config: some Encodable) async throws(CHError) {
        try await create(config: Self.encode(config, for: .vmCreate))
    }

    /// `vm.boot`.
    public func boot() async throws(CHError) { _ = try await call(.vmBoot) }
    /// `vm.pause`.
    public func pause() async throws(CHError) { _ = try await call(.vmPause) }
    /// `vm.resume`.
    public func resume() async throws(CHError) { _ = try await call(.vmResume) }
    /// `vm.shutdown`: the VM goes back to `Created`; `vm.boot` boots it again.
    public func shutdown() async throws(CHError) { _ = try await call(.vmShutdown) }
    /// `vm.reboot`.
    public func reboot() async throws(CHError) { _ = try await call(.vmReboot) }
    /// `vm.power-button`: an ACPI power-button press; the guest decides what to do.
    public func powerButton() async throws(CHError) { _ = try await call(.vmPowerButton) }
    /// `vm.delete`: idempotent.
    public func delete() async throws(CHError) { _ = try await call(.vmDelete) }
    /// `vmm.shutdown`: answers 200 and the process exits right after.
    public func shutdownVMM() async throws(CHError) { _ = try await call(.vmmShutdown) }

    /// `vm.info`.
    public func info() async throws(CHError) -> CHVMInfo {
        let response = try await call(.vmInfo)
        let summary = try decode(InfoSummary.self, from: response, call: .vmInfo)
        return CHVMInfo(state: summary.state, memoryActualSize: summary.memoryActualSize, body: response.body)
    }

    /// `vm.counters`: per device, per counter.
    public func counters() async throws(CHError) -> [String: [String: Int64]] {
        try decode([String: [String: Int64]].self, from: await call(.vmCounters), call: .vmCounters)
    }

    /// `vm.resize`.
    public func resize(_ resize: CHResize) async throws(CHError) {
        _ = try await call(.vmResize, body: Self.encode(resize, for: .vmResize))
    }

    /// `vm.add-net` with a `NetConfig` JSON body and the TAP descriptors (one per queue pair).
    /// Returns the new device when hot-plugged (VM running), nil when cold-added to the config.
    public func addNet(config: [UInt8], descriptors: [Int32] = []) async throws(CHError) -> CHDeviceInfo? {
        try deviceInfo(await call(.vmAddNet, body: config, descriptors: descriptors), call: .vmAddNet)
    }

    /// `vm.add-net` with any `Encodable` `NetConfig`.
    public func addNet(_ config: some Encodable, descriptors: [Int32] = []) async throws(CHError) -> CHDeviceInfo? {
        try await addNet(config: Self.encode(config, for: .vmAddNet), descriptors: descriptors)
    }

    /// `vm.add-disk` with a `DiskConfig` JSON body; like `addNet` for the answer.
    public func addDisk(config: [UInt8]) async throws(CHError) -> CHDeviceInfo? {
        try deviceInfo(await call(.vmAddDisk, body: config), call: .vmAddDisk)
    }

    /// `vm.add-disk` with any `Encodable` `DiskConfig`.
    public func addDisk(_ config: some Encodable) async throws(CHError) -> CHDeviceInfo? {
        try await addDisk(config: Self.encode(config, for: .vmAddDisk))
    }

    /// `vm.remove-device`: returns at once; the device goes when the guest acknowledges the eject.
    public func removeDevice(id: String) async throws(CHError) {
        _ = try await call(.vmRemoveDevice, body: Self.encode(["id": id], for: .vmRemoveDevice))
    }

    // MARK: bodies and answers

    /// JSON for a request body; fields in a stable order so requests are reproducible.
    static func encode(_ value: some Encodable, for endpoint: CHEndpoint) throws(CHError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw .invalidRequest(call: endpoint.rawValue, reason: "cannot encode the body: \(error)")
        }
    }

    private struct InfoSummary: Decodable {
        var state: CHVMState
        var memoryActualSize: Int64?
        enum CodingKeys: String, CodingKey {
            case state
            case memoryActualSize = "memory_actual_size"
        }
    }

    private func deviceInfo(_ response: CHResponse, call: CHEndpoint) throws(CHError) -> CHDeviceInfo? {
        response.status == 204 ? nil : try decode(CHDeviceInfo.self, from: response, call: call)
    }

    private func decode<T: Decodable>(_ type: T.Type, from response: CHResponse, call: CHEndpoint) throws(CHError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(response.body))
        } catch {
            throw .malformedResponse(call: call.rawValue, reason: "body is not a valid \(type): \(error)")
        }
    }

    /// Turns a non-success answer into an error that keeps CH's status and chain.
    static func failure(_ endpoint: CHEndpoint, _ response: CHResponse) -> CHError {
        let chain = errorChain(response.body)
        if response.status == 500, chain.contains(where: { $0.contains("receiving on a closed channel") }) {
            return .vmmGone(call: endpoint.rawValue, detail: chain.joined(separator: ": "))
        }
        return .api(status: response.status, chain: chain, call: endpoint.rawValue)
    }

    /// CH's error bodies are JSON arrays of strings; anything else is kept as one element.
    static func errorChain(_ body: [UInt8]) -> [String] {
        if body.isEmpty { return [] }
        if let chain = try? JSONDecoder().decode([String].self, from: Data(body)) { return chain }
        return [String(decoding: body, as: UTF8.self)]
    }
}
