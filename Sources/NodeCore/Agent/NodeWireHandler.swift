import Foundation
public import Wire

/// Answers Wire requests with the node's ``NodeService``: the control link and the local socket
/// serve the same operations through this one handler.
public struct NodeWireHandler: WireRequestHandler {
    public let service: NodeService
    /// The node's inventory, for `node info`.
    public let inventory: @Sendable () async -> WireNodeInventory
    /// Called after every request that may have changed a VM (the agent reports states then).
    public let changed: @Sendable () -> Void
    /// Called when a start brought a VM to running, with the time from the request to running.
    public let booted: @Sendable (_ vmID: String, _ elapsed: Duration) async -> Void
    /// The most console bytes one answer carries.
    public static let consoleLimit = 512 << 10

    public init(service: NodeService, inventory: @escaping @Sendable () async -> WireNodeInventory,
                changed: @escaping @Sendable () -> Void = {},
                booted: @escaping @Sendable (_ vmID: String, _ elapsed: Duration) async -> Void = { _, _ in }) {
        self.service = service
        self.inventory = inventory
        self.changed = changed
        self.booted = booted
    }

    public func handle(_ request: WireRequest, from peer: WirePeer) async throws -> WireResponse {
        switch request.op {
        case .create(let create):
            guard let nodeRequest = try NodeWireMapping.request(request) else { break }
            var response = try NodeWireMapping.response(await service.handle(nodeRequest))
            defer { changed() }
            if create.start, case .vm(let created) = response.result {
                let began = ContinuousClock.now
                response = try NodeWireMapping.response(await service.handle(.start(name: created.id)))
                if case .vm(let status) = response.result, status.state == .running {
                    await booted(status.id, ContinuousClock.now - began)
                }
            }
            return response
        case .consoleTail(let tail) where !tail.hasOffset:
            return try await consoleTail(vm: tail.vm, maxBytes: Int(tail.maxBytes))
        case .nodeInfo:
            var response = WireResponse()
            response.result = .node(await inventory())
            return response
        case .addNic: throw WireUnsupportedOperation(operation: "add NIC")
        case .removeNic: throw WireUnsupportedOperation(operation: "remove NIC")
        case .addDisk: throw WireUnsupportedOperation(operation: "add disk")
        case .removeDisk: throw WireUnsupportedOperation(operation: "remove disk")
        default:
            break
        }
        guard let nodeRequest = try NodeWireMapping.request(request) else {
            throw WireUnsupportedOperation(operation: "unknown")
        }
        let began = ContinuousClock.now
        let response = await service.handle(nodeRequest)
        switch nodeRequest {
        case .info, .list, .console: break
        default: changed()
        }
        let wire = try NodeWireMapping.response(response)
        if case .start = nodeRequest, case .vm(let status) = wire.result, status.state == .running {
            await booted(status.id, ContinuousClock.now - began)
        }
        return wire
    }

    /// The last `maxBytes` (at most ``consoleLimit``) of the VM's serial console.
    func consoleTail(vm: String, maxBytes: Int) async throws -> WireResponse {
        let path: String
        do {
            path = try await service.serialLog(of: vm)
        } catch {
            throw NodeServiceError(error)
        }
        let wanted = min(max(maxBytes, 0) == 0 ? Self.consoleLimit : maxBytes, Self.consoleLimit)
        let (bytes, truncated) = await HostPreparation.onHostThread { () -> (Data, Bool) in
            var info = stat()
            guard stat(path, &info) == 0 else { return (Data(), false) }
            let size = Int64(info.st_size)
            let offset = max(0, size - Int64(wanted))
            return (NodeService.read(path: path, offset: offset, limit: wanted), offset > 0)
        }
        var data = WireConsoleData()
        data.data = bytes
        data.truncated = truncated
        var response = WireResponse()
        response.result = .console(data)
        return response
    }
}
