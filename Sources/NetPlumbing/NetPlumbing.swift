public import LinuxSys
#if canImport(Glibc)
import Glibc
#endif

/// Host networking for VMs: TAP, MACVTAP, veth and bridge links over netlink and ioctls.
///
/// Every method takes the network namespace to work in and runs its blocking work on that
/// namespace's dedicated thread (``NetworkNamespace/perform(_:)``), never on the caller's task.
/// Requests are validated before anything touches the kernel; kernel refusals keep their errno.
public struct NetPlumbing: Sendable {
    public init() {}

    /// Creates a persistent TAP, configures it (owner, group, offloads, vnet header size, MTU,
    /// MAC, txqueuelen, bridge master, tag, up) and returns it as the kernel reports it.
    ///
    /// Idempotent: an existing TAP with the same attributes is returned (`created == false`); one
    /// with other attributes fails with `.conflictingLink` naming each difference. Compared are
    /// kind, multi-queue, vnet header flag, owner, group, MTU, MAC, txqueuelen, master, up and tag;
    /// offloads and the vnet header size are not (a VMM sets them again when it attaches).
    ///
    /// Offloads this kernel refuses are dropped and reported in `refusedOffloads`; an MTU above
    /// the TAP's maximum fails with `.mtuOutOfRange` and leaves no link behind.
    public func createTap(_ request: TapRequest, in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> TapResult {
        let tap = try request.validated()
        return try await run(namespace) { ops throws(NetPlumbingError) in try ops.createTap(tap) }
    }

    /// Opens `count` queues of the TAP `name` (one fd each, `TUNSETIFF` on the existing link),
    /// for hand-over to a VMM. More than one queue needs a multi-queue TAP. A single-queue TAP
    /// that stays attached elsewhere fails with EBUSY (after up to 50 ms of waiting for a
    /// concurrently forked child to let go of it).
    public func openTapQueues(_ name: String, count: Int = 1, in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> QueueDescriptors {
        let name = try InterfaceName(name)
        let fds = try await run(namespace) { ops throws(NetPlumbingError) in try ops.openTapQueues(name, count: count) }
        return QueueDescriptors(adopting: fds)
    }

    /// Creates a MACVTAP on `request.parent` and a private character device node for it in
    /// `request.deviceDirectory` (major:minor read from this namespace's sysfs). Idempotent like
    /// ``createTap(_:in:)``.
    public func createMacvtap(_ request: MacvtapRequest, in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> MacvtapResult {
        let macvtap = try request.validated()
        return try await run(namespace) { ops throws(NetPlumbingError) in try ops.createMacvtap(macvtap) }
    }

    /// Opens the MACVTAP character device `count` times (one fd per queue).
    public func openMacvtapQueues(_ macvtap: MacvtapResult, count: Int = 1, in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> QueueDescriptors {
        if !(1...256).contains(count) {
            throw .invalidArgument(field: "count", value: "\(count)", reason: "is outside 1…256")
        }
        let path = macvtap.devicePath
        let fds = try await run(namespace) { _ throws(NetPlumbingError) in
            var fds: [Int32] = []
            for queue in 0..<count {
                do throws(SystemError) {
                    fds.append(try FileDescriptor.open(path, O_RDWR | O_NONBLOCK).take())
                } catch {
                    for fd in fds { _ = Glibc.close(fd) }
                    throw .system(SystemError("open queue \(queue) of \(path)", errno: error.errno))
                }
            }
            return fds
        }
        return QueueDescriptors(adopting: fds)
    }

    /// Creates a veth pair; returns both ends.
    public func createVeth(_ request: VethRequest, in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> (LinkInfo, LinkInfo) {
        try request.validate()
        let pair = try await run(namespace) { ops throws(NetPlumbingError) in
            let (a, b) = try ops.createVeth(request)
            return [a, b]
        }
        return (pair[0], pair[1])
    }

    /// Creates a Linux bridge.
    public func createBridge(_ request: BridgeRequest, in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> LinkInfo {
        try request.validate()
        return try await run(namespace) { ops throws(NetPlumbingError) in try ops.createBridge(request) }
    }

    /// Changes MTU (checked against 68 and the link's or parent's maximum), MAC, up/down, bridge
    /// master, txqueuelen or tag of any link, in one request.
    public func configure(_ name: String, _ changes: LinkChanges, in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> LinkInfo {
        let name = try InterfaceName(name)
        if let mtu = changes.mtu { try checkMTU(mtu, field: "mtu", maximum: MTULimits.maximum, limit: "the largest IP") }
        if let mac = changes.mac { _ = try MacAddress(mac) }
        return try await run(namespace) { ops throws(NetPlumbingError) in try ops.configure(name, changes) }
    }

    /// The link `name` as the kernel reports it; `.linkNotFound` when absent.
    public func link(_ name: String, in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> LinkInfo {
        let name = try InterfaceName(name)
        return try await run(namespace) { ops throws(NetPlumbingError) in try ops.socket.require(name, field: "name") }
    }

    /// Every link of the namespace (one RTM_GETLINK dump).
    public func links(in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> [LinkInfo] {
        try await run(namespace) { ops throws(NetPlumbingError) in try ops.socket.links() }
    }

    /// ethtool features of `name` (for a TAP, `tapOffloads` maps them back to `TUN_F_*`).
    public func features(of name: String, in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> LinkFeatures {
        let name = try InterfaceName(name)
        return try await run(namespace) { ops throws(NetPlumbingError) in try ops.features(of: name) }
    }

    /// Deletes the link `name` (`.linkNotFound` when absent) and, when `deviceDirectory` is given,
    /// its MACVTAP device node there.
    public func delete(_ name: String, deviceDirectory: String? = nil, in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) {
        let name = try InterfaceName(name)
        try await run(namespace) { ops throws(NetPlumbingError) in try ops.delete(name, deviceDirectory: deviceDirectory) }
    }

    /// Links carrying a qarax tag.
    public func listOwnedLinks(in namespace: NetworkNamespace = .current) async throws(NetPlumbingError) -> [OwnedLink] {
        try await run(namespace) { ops throws(NetPlumbingError) in try ops.ownedLinks() }
    }

    /// Deletes the tagged links whose VM is not in `knownVMs`; untagged links and links of known
    /// VMs stay. Returns what was removed. MACVTAP device nodes live in directories NetPlumbing
    /// does not track; whoever made them removes them (``delete(_:deviceDirectory:in:)``).
    @discardableResult
    public func reap(in namespace: NetworkNamespace = .current, knownVMs: Set<String>) async throws(NetPlumbingError) -> [OwnedLink] {
        try await run(namespace) { ops throws(NetPlumbingError) in try ops.reap(knownVMs: knownVMs) }
    }

    private func run<T: Sendable>(_ namespace: NetworkNamespace,
                                  _ body: @escaping @Sendable (LinkOperations) throws(NetPlumbingError) -> T) async throws(NetPlumbingError) -> T {
        do {
            return try await namespace.perform { () throws -> T in
                let ops = try LinkOperations(namespace: namespace)
                do {
                    return try body(ops)
                } catch {
                    ThreadRouteSocket.discard()
                    throw error
                }
            }
        } catch let error as NetPlumbingError {
            throw error
        } catch let error as NetworkNamespaceError {
            throw .namespace(error)
        } catch {
            throw .system(SystemError("\(namespace): \(error)", errno: EIO))
        }
    }
}
