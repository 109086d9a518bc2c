import CLibNL
import CShims
import LinuxSys
#if canImport(Glibc)
import Glibc
#endif

/// A NETLINK_ROUTE socket (libnl) in the calling thread's network namespace that keeps the
/// kernel's errno of every refused request. Used on one namespace thread only.
final class RouteSocket {
    private let sock: OpaquePointer
    private let errorSlot: UnsafeMutablePointer<Int32>
    /// For error messages: "network namespace 'x'".
    let namespace: String

    init(namespace: String) throws(NetPlumbingError) {
        self.namespace = namespace
        guard let sock = nl_socket_alloc() else {
            throw .system(SystemError("nl_socket_alloc in \(namespace)", errno: ENOMEM))
        }
        self.sock = sock
        errorSlot = .allocate(capacity: 1)
        errorSlot.pointee = 0
        let r = nl_connect(sock, NETLINK_ROUTE)
        if r < 0 {
            let code = Self.errno(fromLibnl: r)
            nl_socket_free(sock)
            errorSlot.deallocate()
            throw .system(SystemError("connect a NETLINK_ROUTE socket in \(namespace)", errno: code))
        }
        // libnl turns an error reply into a lossy NLE_* code; this handler keeps nlmsgerr.error.
        if let cb = nl_socket_get_cb(sock) {
            _ = nl_cb_err(cb, NL_CB_CUSTOM, { _, error, slot in
                if let error, let slot {
                    slot.assumingMemoryBound(to: Int32.self).pointee = abs(error.pointee.error)
                }
                return Int32(NL_STOP.rawValue)
            }, errorSlot)
            nl_cb_put(cb)
        }
        // One recvmsg per datagram instead of a peek and a read; 32 KiB holds any link message
        // and the dump batches the kernel sizes after our buffer.
        nl_socket_disable_msg_peek(sock)
        _ = nl_socket_set_msg_buf_size(sock, 32768)
    }

    deinit {
        nl_socket_free(sock)
        errorSlot.deallocate()
    }

    /// Turns a libnl result into the kernel's errno (or the closest one when libnl failed on its own).
    func check(_ result: Int32, _ operation: @autoclosure () -> String) throws(NetPlumbingError) {
        let recorded = errorSlot.pointee
        errorSlot.pointee = 0
        if result >= 0 { return }
        let code = recorded != 0 ? recorded : Self.errno(fromLibnl: result)
        throw .system(SystemError("\(operation()) in \(namespace)", errno: code))
    }

    /// The link named `name`, or nil when the kernel says ENODEV.
    func link(named name: InterfaceName) throws(NetPlumbingError) -> LinkInfo? {
        try fetch(index: 0, name: name.rawValue, operation: "get link '\(name)'").first
    }

    func link(index: Int32) throws(NetPlumbingError) -> LinkInfo? {
        try fetch(index: index, name: nil, operation: "get link #\(index)").first
    }

    /// Every link of the namespace.
    func links() throws(NetPlumbingError) -> [LinkInfo] {
        try fetch(index: 0, name: nil, operation: "dump links")
    }

    /// The link named `name`; ENODEV becomes `.linkNotFound(field:)`.
    func require(_ name: InterfaceName, field: String) throws(NetPlumbingError) -> LinkInfo {
        guard let link = try link(named: name) else {
            throw .linkNotFound(field: field, name: name.rawValue, namespace: namespace)
        }
        return link
    }

    private func fetch(index: Int32, name: String?, operation: String) throws(NetPlumbingError) -> [LinkInfo] {
        var links: [LinkInfo] = []
        for message in try rawMessages(index: index, name: name, operation: operation) {
            do { links.append(try LinkMessage.parse(message)) } catch {
                throw .system(SystemError("\(operation): malformed reply (\(error.reason))", errno: EPROTO))
            }
        }
        return links
    }

    /// The RTM_NEWLINK messages answering a get (by index, else by name) or, with neither, a dump,
    /// raw: libnl parses neither IFLA_MIN_MTU / IFLA_MAX_MTU nor tun's IFLA_INFO_DATA.
    /// A get of a missing link yields no message.
    func rawMessages(index: Int32, name: String?, operation: String) throws(NetPlumbingError) -> [[UInt8]] {
        let dump = index == 0 && name == nil
        guard let message = nlmsg_alloc_simple(Int32(RTM_GETLINK), dump ? NLM_F_DUMP : 0) else {
            throw .system(SystemError("\(operation) in \(namespace)", errno: ENOMEM))
        }
        defer { nlmsg_free(message) }
        var header = ifinfomsg()
        header.ifi_family = UInt8(AF_UNSPEC)
        header.ifi_index = index
        var built = nlmsg_append(message, &header, MemoryLayout<ifinfomsg>.size, Int32(NLMSG_ALIGNTO)) >= 0
        if built, index == 0, let name { built = nla_put_string(message, Int32(IFLA_IFNAME), name) >= 0 }
        if built { built = nla_put_u32(message, Int32(IFLA_EXT_MASK), UInt32(RTEXT_FILTER_SKIP_STATS)) >= 0 }
        guard built, let own = nl_socket_get_cb(sock) else {
            throw .system(SystemError("\(operation): build the request", errno: EMSGSIZE))
        }
        let callbacks = nl_cb_clone(own)
        nl_cb_put(own)
        guard let callbacks else { throw .system(SystemError("\(operation) in \(namespace)", errno: ENOMEM)) }
        defer { nl_cb_put(callbacks) }
        let collector = MessageCollector()
        let context = Unmanaged.passUnretained(collector).toOpaque()
        _ = nl_cb_set(callbacks, NL_CB_VALID, NL_CB_CUSTOM, { message, context in
            if let message, let context, let header = nlmsg_hdr(message), header.pointee.nlmsg_type == UInt16(RTM_NEWLINK) {
                Unmanaged<MessageCollector>.fromOpaque(context).takeUnretainedValue()
                    .add(UnsafeRawPointer(header), header.pointee.nlmsg_len)
            }
            return Int32(NL_OK.rawValue)
        }, context)
        errorSlot.pointee = 0
        var r = nl_send_auto(sock, message)
        if r >= 0 { r = nl_recvmsgs(sock, callbacks) }
        // A get is answered by one message, then the acknowledgement libnl asked for.
        if r >= 0 && !dump { r = nl_wait_for_ack(sock) }
        if r < 0 && errorSlot.pointee == ENODEV && !dump {
            errorSlot.pointee = 0
            return []
        }
        try check(r, operation)
        return withExtendedLifetime(collector) { collector.messages }
    }

    /// RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL.
    func add(_ link: OpaquePointer, _ operation: @autoclosure () -> String) throws(NetPlumbingError) {
        errorSlot.pointee = 0
        try check(rtnl_link_add(sock, link, NLM_F_CREATE | NLM_F_EXCL), operation())
    }

    /// Applies `changes` to the link with ifindex `index` in one request.
    func change(index: Int32, _ changes: OpaquePointer, _ operation: @autoclosure () -> String) throws(NetPlumbingError) {
        guard let original = rtnl_link_alloc() else { throw .system(SystemError(operation(), errno: ENOMEM)) }
        defer { rtnl_link_put(original) }
        rtnl_link_set_ifindex(original, index)
        errorSlot.pointee = 0
        try check(rtnl_link_change(sock, original, changes, 0), operation())
    }

    /// Applies `changes` to the link named `name` (looked up by the kernel) in one request.
    func change(name: InterfaceName, _ changes: OpaquePointer, _ operation: @autoclosure () -> String) throws(NetPlumbingError) {
        guard let original = rtnl_link_alloc() else { throw .system(SystemError(operation(), errno: ENOMEM)) }
        defer { rtnl_link_put(original) }
        rtnl_link_set_name(original, name.rawValue)
        rtnl_link_set_name(changes, name.rawValue)
        errorSlot.pointee = 0
        try check(rtnl_link_change(sock, original, changes, 0), operation())
    }

    /// RTM_DELLINK by name.
    func delete(_ name: InterfaceName) throws(NetPlumbingError) {
        guard let link = rtnl_link_alloc() else { throw .system(SystemError("delete link '\(name)'", errno: ENOMEM)) }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name.rawValue)
        errorSlot.pointee = 0
        do {
            try check(rtnl_link_delete(sock, link), "delete link '\(name)'")
        } catch let error where error.errno == ENODEV {
            throw .linkNotFound(field: "name", name: name.rawValue, namespace: namespace)
        }
    }

    /// The errno a libnl `-NLE_*` code stands for, for failures the kernel did not report itself.
    static func errno(fromLibnl code: Int32) -> Int32 {
        switch -code {
        case NLE_NOMEM: ENOMEM
        case NLE_EXIST: EEXIST
        case NLE_INVAL: EINVAL
        case NLE_RANGE: ERANGE
        case NLE_OPNOTSUPP: EOPNOTSUPP
        case NLE_AGAIN: EAGAIN
        case NLE_BUSY: EBUSY
        case NLE_NODEV: ENODEV
        case NLE_PERM: EPERM
        case NLE_NOACCESS: EACCES
        case NLE_OBJ_NOTFOUND: ENOENT
        case NLE_BAD_SOCK: EBADF
        case NLE_PROTO_MISMATCH: EPROTONOSUPPORT
        default: EIO
        }
    }
}

/// Copies of the raw messages a dump or get delivered.
private final class MessageCollector {
    var messages: [[UInt8]] = []

    func add(_ bytes: UnsafeRawPointer, _ length: UInt32) {
        messages.append(Array(UnsafeRawBufferPointer(start: bytes, count: Int(length))))
    }
}

/// Builds an `rtnl_link` for add/change requests and releases it.
struct LinkBuilder: ~Copyable {
    let link: OpaquePointer

    init(_ allocate: () -> OpaquePointer?, operation: String) throws(NetPlumbingError) {
        guard let link = allocate() else { throw .system(SystemError(operation, errno: ENOMEM)) }
        self.link = link
    }

    deinit { rtnl_link_put(link) }

    func set(name: InterfaceName) { rtnl_link_set_name(link, name.rawValue) }
    func set(mtu: Int?) { if let mtu { rtnl_link_set_mtu(link, UInt32(mtu)) } }
    func set(txQueueLength: UInt32?) { if let txQueueLength { rtnl_link_set_txqlen(link, txQueueLength) } }
    func set(alias: String?) { if let alias { rtnl_link_set_ifalias(link, alias) } }
    func set(masterIndex: Int32?) { if let masterIndex { rtnl_link_set_master(link, masterIndex) } }

    func set(up: Bool?) {
        guard let up else { return }
        if up { rtnl_link_set_flags(link, 0x1) } else { rtnl_link_unset_flags(link, 0x1) }
    }

    func set(mac: MacAddress?) {
        guard let mac else { return }
        mac.bytes.withUnsafeBytes { raw in
            if let address = nl_addr_build(AF_LLC, raw.baseAddress, 6) {
                rtnl_link_set_addr(link, address)
                nl_addr_put(address)
            }
        }
    }
}
