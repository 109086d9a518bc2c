import CLibNL
import CShims
import LinuxSys
#if canImport(Glibc)
import Glibc
#endif

/// The blocking work behind `NetPlumbing`, run on the target namespace's dedicated thread.
final class LinkOperations {
    let socket: RouteSocket

    /// Uses the calling namespace thread's socket.
    init(namespace: NetworkNamespace) throws(NetPlumbingError) {
        socket = try ThreadRouteSocket.current(namespace: namespace.description)
    }

    var namespace: String { socket.namespace }

    // MARK: TAP

    func createTap(_ tap: ValidatedTap) throws(NetPlumbingError) -> TapResult {
        let request = tap.request
        let masterIndex = try tap.common.master.map { m throws(NetPlumbingError) in try socket.require(m, field: "master").index }
        var params = qx_tap_params()
        params.multi_queue = tap.multiQueue ? 1 : 0
        params.owner = request.owner.map(Int64.init) ?? -1
        params.group = request.group.map(Int64.init) ?? -1
        params.vnet_hdr_size = Int32(request.vnetHeaderSize ?? 0)
        params.offloads = request.offloads.rawValue
        // Create first and look only when the name is taken (TUNSETIFF with IFF_TUN_EXCL: EBUSY):
        // the common case costs no extra round trip.
        let r = qx_tap_create(tap.name.rawValue, &params)
        if r == -EBUSY && params.failed_step == Int32(QX_TAP_STEP_SETIFF.rawValue),
           let existing = try socket.link(named: tap.name) {
            let differences = tapDifferences(existing, tap, masterIndex: masterIndex)
            if !differences.isEmpty { throw .conflictingLink(name: tap.name.rawValue, differences: differences) }
            return TapResult(link: existing, created: false, acceptedOffloads: nil, refusedOffloads: [])
        }
        if r < 0 {
            throw .system(SystemError("create TAP '\(tap.name)' in \(namespace): \(Self.stepName(params.failed_step))", negated: r))
        }
        let accepted = TapOffloads(rawValue: params.accepted)
        do {
            let builder = try LinkBuilder(rtnl_link_alloc, operation: "configure TAP '\(tap.name)'")
            builder.set(mtu: tap.common.mtu)
            builder.set(mac: tap.common.mac)
            builder.set(txQueueLength: tap.common.txQueueLength)
            builder.set(masterIndex: masterIndex)
            builder.set(alias: request.tag.alias)
            builder.set(up: request.up ? true : nil)
            try changeCheckingMTU(tap.name, builder, mtu: tap.common.mtu, limit: "the TAP's", "configure TAP '\(tap.name)'")
            let link = try socket.require(tap.name, field: "name")
            return TapResult(link: link, created: true, acceptedOffloads: accepted,
                             refusedOffloads: request.offloads.subtracting(accepted))
        } catch {
            try? socket.delete(tap.name)
            throw error
        }
    }

    /// Applies `builder` to `name`; when the kernel refuses with EINVAL and the MTU is above the
    /// link's maximum, reports that precisely (the maximum is only read when needed).
    func changeCheckingMTU(_ name: InterfaceName, _ builder: borrowing LinkBuilder, mtu: Int?, limit: String,
                           _ operation: String) throws(NetPlumbingError) {
        do {
            try socket.change(name: name, builder.link, operation)
        } catch let error where error.errno == EINVAL && mtu != nil {
            if let mtu, let link = try socket.link(named: name), let maximum = link.maxMTU, mtu > maximum {
                throw .mtuOutOfRange(field: "mtu", value: mtu, minimum: MTULimits.minimum, maximum: maximum, limit: limit)
            }
            throw error
        }
    }

    func tapDifferences(_ existing: LinkInfo, _ tap: ValidatedTap, masterIndex: Int32?) -> [LinkDifference] {
        let request = tap.request
        var d: [LinkDifference] = []
        guard existing.isTap, let tun = existing.tun else {
            return [LinkDifference(field: "kind", existing: existing.kind ?? "none", requested: "tap")]
        }
        func compare<T: Equatable>(_ field: String, _ have: T, _ want: T, _ show: (T) -> String) {
            if have != want { d.append(LinkDifference(field: field, existing: show(have), requested: show(want))) }
        }
        let showID: (UInt32?) -> String = { $0.map(String.init) ?? "unset" }
        compare("multiQueue", tun.multiQueue ?? false, tap.multiQueue) { "\($0)" }
        compare("vnetHeader", tun.vnetHeader ?? false, true) { "\($0)" }
        compare("owner", tun.owner, request.owner, showID)
        compare("group", tun.group, request.group, showID)
        commonDifferences(existing, tap.common, masterIndex: masterIndex, compareMaster: true, up: request.up,
                          alias: request.tag.alias, into: &d)
        return d
    }

    func commonDifferences(_ existing: LinkInfo, _ common: CommonLinkFields, masterIndex: Int32?, compareMaster: Bool,
                           up: Bool, alias: String?, into d: inout [LinkDifference]) {
        if let mtu = common.mtu, existing.mtu != mtu {
            d.append(LinkDifference(field: "mtu", existing: "\(existing.mtu)", requested: "\(mtu)"))
        }
        if let mac = common.mac, existing.mac != mac {
            d.append(LinkDifference(field: "mac", existing: existing.mac?.description ?? "none", requested: mac.description))
        }
        if let q = common.txQueueLength, existing.txQueueLength != Int(q) {
            d.append(LinkDifference(field: "txQueueLength", existing: existing.txQueueLength.map(String.init) ?? "none", requested: "\(q)"))
        }
        if compareMaster, existing.masterIndex != masterIndex {
            let show: (Int32?) -> String = { index in
                guard let index else { return "none" }
                return ((try? self.socket.link(index: index))??.name).map { "'\($0)'" } ?? "#\(index)"
            }
            d.append(LinkDifference(field: "master", existing: show(existing.masterIndex), requested: show(masterIndex)))
        }
        if existing.isUp != up {
            d.append(LinkDifference(field: "up", existing: "\(existing.isUp)", requested: "\(up)"))
        }
        if existing.alias != alias {
            d.append(LinkDifference(field: "tag", existing: existing.alias.map { "'\($0)'" } ?? "none",
                                    requested: alias.map { "'\($0)'" } ?? "none"))
        }
    }

    static func stepName(_ step: Int32) -> String {
        switch UInt32(bitPattern: step) {
        case QX_TAP_STEP_OPEN.rawValue: "open /dev/net/tun"
        case QX_TAP_STEP_SETIFF.rawValue: "TUNSETIFF (IFF_TUN_EXCL: EBUSY means the name is taken)"
        case QX_TAP_STEP_OWNER.rawValue: "TUNSETOWNER"
        case QX_TAP_STEP_GROUP.rawValue: "TUNSETGROUP"
        case QX_TAP_STEP_VNETHDRSZ.rawValue: "TUNSETVNETHDRSZ"
        case QX_TAP_STEP_OFFLOAD.rawValue: "TUNSETOFFLOAD"
        case QX_TAP_STEP_PERSIST.rawValue: "TUNSETPERSIST"
        default: "step \(step)"
        }
    }

    func openTapQueues(_ name: InterfaceName, count: Int) throws(NetPlumbingError) -> [Int32] {
        let link = try socket.require(name, field: "name")
        guard link.isTap, let tun = link.tun else {
            throw .invalidArgument(field: "name", value: name.rawValue, reason: "is a \(link.kind ?? "plain") link, not a TAP")
        }
        let multi = tun.multiQueue ?? false
        if !(1...256).contains(count) {
            throw .invalidArgument(field: "count", value: "\(count)", reason: "is outside 1…256")
        }
        if count > 1 && !multi {
            throw .invalidArgument(field: "count", value: "\(count)", reason: "needs a multi-queue TAP; '\(name)' has one queue")
        }
        var fds: [Int32] = []
        for queue in 0..<count {
            var fd = qx_tap_attach(name.rawValue, multi ? 1 : 0, (tun.vnetHeader ?? true) ? 1 : 0)
            // A single-queue TAP refuses a second attachment (EBUSY). The fd that created it may
            // still be held for a moment by a child forked concurrently elsewhere in the process
            // (until its exec closes it): wait for that, briefly and boundedly.
            var retries = 0
            while fd == -EBUSY && !multi && retries < 200 {
                var pause = timespec(tv_sec: 0, tv_nsec: 250_000)
                _ = nanosleep(&pause, nil)
                retries += 1
                fd = qx_tap_attach(name.rawValue, 0, (tun.vnetHeader ?? true) ? 1 : 0)
            }
            if fd < 0 {
                for fd in fds { _ = Glibc.close(fd) }
                throw .system(SystemError("attach queue \(queue) of TAP '\(name)' in \(namespace) (TUNSETIFF)", negated: fd))
            }
            fds.append(fd)
        }
        return fds
    }

    // MARK: MACVTAP

    func createMacvtap(_ m: ValidatedMacvtap) throws(NetPlumbingError) -> MacvtapResult {
        let request = m.request
        let parent = try socket.require(m.parent, field: "parent")
        if let mtu = m.common.mtu {
            try checkMTU(mtu, field: "mtu", maximum: parent.mtu, limit: "the parent link '\(parent.name)'")
        }
        let builder = try LinkBuilder(rtnl_link_macvtap_alloc, operation: "create MACVTAP '\(m.name)'")
        builder.set(name: m.name)
        rtnl_link_set_link(builder.link, parent.index)
        try socket.check(rtnl_link_macvtap_set_mode(builder.link, request.mode.kernelValue), "set MACVTAP mode \(request.mode)")
        // A passthru MACVTAP takes its parent's address at creation; its own is set afterwards.
        if request.mode != .passthru { builder.set(mac: m.common.mac) }
        builder.set(mtu: m.common.mtu)
        builder.set(txQueueLength: m.common.txQueueLength)
        builder.set(up: request.up ? true : nil)
        // Create first and look only when the name is taken (NLM_F_EXCL: EEXIST).
        do {
            try socket.add(builder.link, "create MACVTAP '\(m.name)' on '\(parent.name)'")
        } catch let error where error.errno == EEXIST {
            return try existingMacvtap(m, parent: parent)
        }
        do {
            try tagCreated(m.name, alias: request.tag.alias, mac: request.mode == .passthru ? m.common.mac : nil)
            let link = try socket.require(m.name, field: "name")
            let node = try makeDeviceNode(link, request)
            return MacvtapResult(link: link, created: true, devicePath: node.path, deviceMajor: node.major, deviceMinor: node.minor)
        } catch {
            try? socket.delete(m.name)
            throw error
        }
    }

    /// A link named like the request exists: return it when it matches, else name each difference.
    func existingMacvtap(_ m: ValidatedMacvtap, parent: LinkInfo) throws(NetPlumbingError) -> MacvtapResult {
        let request = m.request
        let existing = try socket.require(m.name, field: "name")
        var d: [LinkDifference] = []
        if existing.kind != "macvtap" {
            d.append(LinkDifference(field: "kind", existing: existing.kind ?? "none", requested: "macvtap"))
        } else {
            if existing.parentIndex != parent.index {
                d.append(LinkDifference(field: "parent", existing: existing.parentIndex.map { "#\($0)" } ?? "none",
                                        requested: "'\(parent.name)' (#\(parent.index))"))
            }
            if existing.macvtapMode != request.mode {
                d.append(LinkDifference(field: "mode", existing: existing.macvtapMode?.rawValue ?? "unknown",
                                        requested: request.mode.rawValue))
            }
            commonDifferences(existing, m.common, masterIndex: nil, compareMaster: false, up: request.up,
                              alias: request.tag.alias, into: &d)
        }
        if !d.isEmpty { throw .conflictingLink(name: m.name.rawValue, differences: d) }
        let node = try makeDeviceNode(existing, request)
        return MacvtapResult(link: existing, created: false, devicePath: node.path, deviceMajor: node.major, deviceMinor: node.minor)
    }

    /// Sets the ifalias (and what else creation cannot carry) on a just-created link: RTM_NEWLINK
    /// ignores IFLA_IFALIAS when it creates a link.
    func tagCreated(_ name: InterfaceName, alias: String?, mac: MacAddress? = nil) throws(NetPlumbingError) {
        if alias == nil && mac == nil { return }
        let changes = try LinkBuilder(rtnl_link_alloc, operation: "tag link '\(name)'")
        changes.set(alias: alias)
        changes.set(mac: mac)
        try socket.change(name: name, changes.link, "tag link '\(name)'")
    }

    /// Reads the MACVTAP's major:minor from this namespace's sysfs and makes a private node for
    /// it; `/dev/tapN` is named by a per-namespace ifindex and can be another namespace's device.
    func makeDeviceNode(_ link: LinkInfo, _ request: MacvtapRequest) throws(NetPlumbingError) -> (path: String, major: UInt32, minor: UInt32) {
        let sysfs = "/sys/class/net/\(link.name)/macvtap/tap\(link.index)/dev"
        let text: String
        do { text = try readProcFile(sysfs) } catch {
            throw .system(SystemError("read \(sysfs) in \(namespace)", errno: error.errno))
        }
        let numbers = text.split(whereSeparator: { $0 == ":" || $0 == "\n" })
        guard numbers.count == 2, let major = UInt32(numbers[0]), let minor = UInt32(numbers[1]) else {
            throw .system(SystemError("parse '\(text)' of \(sysfs)", errno: EPROTO))
        }
        let path = request.deviceDirectory.hasSuffix("/") ? request.deviceDirectory + link.name : request.deviceDirectory + "/" + link.name
        var haveMajor: UInt32 = 0
        var haveMinor: UInt32 = 0
        let existing = qx_char_device_numbers(path, &haveMajor, &haveMinor)
        if existing == 0 && haveMajor == major && haveMinor == minor {
            try chown(path, request)
            return (path, major, minor)
        }
        if existing != -ENOENT && unlink(path) < 0 && Glibc.errno != ENOENT {
            throw .system(SystemError("remove stale \(path)", errno: Glibc.errno))
        }
        let r = qx_mknod_char(path, 0o600, major, minor)
        if r < 0 { throw .system(SystemError("mknod \(path) (char \(major):\(minor))", negated: r)) }
        try chown(path, request)
        return (path, major, minor)
    }

    private func chown(_ path: String, _ request: MacvtapRequest) throws(NetPlumbingError) {
        if request.deviceOwner == nil && request.deviceGroup == nil { return }
        let uid = request.deviceOwner ?? UInt32.max
        let gid = request.deviceGroup ?? UInt32.max
        if Glibc.chown(path, uid, gid) < 0 {
            throw .system(SystemError("chown \(path) to \(uid):\(gid)", errno: Glibc.errno))
        }
    }

    // MARK: veth, bridge

    func createVeth(_ request: VethRequest) throws(NetPlumbingError) -> (LinkInfo, LinkInfo) {
        let (name, peerName, common) = try request.validated()
        if let existing = try socket.link(named: name) {
            var d: [LinkDifference] = []
            if existing.kind != "veth" {
                d.append(LinkDifference(field: "kind", existing: existing.kind ?? "none", requested: "veth"))
            }
            let peer = try socket.link(named: peerName)
            if peer == nil || existing.parentIndex != peer?.index {
                d.append(LinkDifference(field: "peer", existing: existing.parentIndex.map { "#\($0)" } ?? "none",
                                        requested: "'\(peerName)'"))
            }
            commonDifferences(existing, common, masterIndex: nil, compareMaster: false, up: request.up,
                              alias: request.tag?.alias, into: &d)
            if let peer, d.isEmpty { return (existing, peer) }
            throw .conflictingLink(name: name.rawValue, differences: d)
        }
        let builder = try LinkBuilder(rtnl_link_veth_alloc, operation: "create veth '\(name)'")
        guard let peer = rtnl_link_veth_get_peer(builder.link) else {
            throw .system(SystemError("create veth '\(name)': no peer object", errno: ENOMEM))
        }
        defer { rtnl_link_put(peer) }
        for link in [builder.link, peer] {
            if let mtu = common.mtu { rtnl_link_set_mtu(link, UInt32(mtu)) }
        }
        builder.set(name: name)
        rtnl_link_set_name(peer, peerName.rawValue)
        try socket.add(builder.link, "create veth '\(name)' with peer '\(peerName)'")
        // Up and tag only after creation: the kernel opens the first end before the pair is joined
        // (ENOTCONN when asked to bring it up in the same request) and ignores IFLA_IFALIAS.
        if request.up || request.tag != nil {
            do {
                for end in [name, peerName] {
                    let changes = try LinkBuilder(rtnl_link_alloc, operation: "configure veth '\(end)'")
                    changes.set(up: request.up ? true : nil)
                    changes.set(alias: request.tag?.alias)
                    try socket.change(name: end, changes.link, "configure veth '\(end)'")
                }
            } catch {
                try? socket.delete(name)
                throw error
            }
        }
        return (try socket.require(name, field: "name"), try socket.require(peerName, field: "peer"))
    }

    func createBridge(_ request: BridgeRequest) throws(NetPlumbingError) -> LinkInfo {
        let (name, common) = try request.validated()
        if let existing = try socket.link(named: name) {
            var d: [LinkDifference] = []
            if existing.kind != "bridge" {
                d.append(LinkDifference(field: "kind", existing: existing.kind ?? "none", requested: "bridge"))
            }
            commonDifferences(existing, common, masterIndex: nil, compareMaster: false, up: request.up,
                              alias: request.tag?.alias, into: &d)
            if d.isEmpty { return existing }
            throw .conflictingLink(name: name.rawValue, differences: d)
        }
        let builder = try LinkBuilder(rtnl_link_bridge_alloc, operation: "create bridge '\(name)'")
        builder.set(name: name)
        builder.set(mtu: common.mtu)
        builder.set(up: request.up ? true : nil)
        try socket.add(builder.link, "create bridge '\(name)'")
        do {
            try tagCreated(name, alias: request.tag?.alias)
        } catch {
            try? socket.delete(name)
            throw error
        }
        return try socket.require(name, field: "name")
    }

    // MARK: any link

    func configure(_ name: InterfaceName, _ changes: LinkChanges) throws(NetPlumbingError) -> LinkInfo {
        let masterName: String? = if case let .bridge(m) = changes.master { m } else { nil }
        let common = try CommonLinkFields.validate(mtu: changes.mtu, mac: changes.mac, txQueueLength: changes.txQueueLength,
                                                   master: masterName)
        let link = try socket.require(name, field: "name")
        if let mtu = common.mtu {
            if link.kind == "macvtap" || link.kind == "macvlan", let parentIndex = link.parentIndex,
               let parent = try socket.link(index: parentIndex) {
                try checkMTU(mtu, field: "mtu", maximum: min(parent.mtu, link.maxMTU ?? parent.mtu),
                             limit: "the parent link '\(parent.name)'")
            } else {
                try checkMTU(mtu, field: "mtu", maximum: link.maxMTU ?? MTULimits.maximum, limit: "the link's")
            }
        }
        var masterIndex: Int32?
        switch changes.master {
        case .detach: masterIndex = 0
        case .bridge: masterIndex = try common.master.map { m throws(NetPlumbingError) in try socket.require(m, field: "master").index }
        case nil: masterIndex = nil
        }
        let builder = try LinkBuilder(rtnl_link_alloc, operation: "configure link '\(name)'")
        builder.set(mtu: common.mtu)
        builder.set(mac: common.mac)
        builder.set(txQueueLength: common.txQueueLength)
        builder.set(masterIndex: masterIndex)
        builder.set(alias: changes.tag?.alias)
        builder.set(up: changes.up)
        try socket.change(index: link.index, builder.link, "configure link '\(name)'")
        return try socket.require(name, field: "name")
    }

    func features(of name: InterfaceName) throws(NetPlumbingError) -> LinkFeatures {
        let count = qx_ethtool_feature_count(name.rawValue)
        if count < 0 {
            if -count == ENODEV { throw .linkNotFound(field: "name", name: name.rawValue, namespace: namespace) }
            throw .system(SystemError("ETHTOOL_GSSET_INFO on '\(name)' in \(namespace)", negated: count))
        }
        var names = [CChar](repeating: 0, count: Int(count) * 32)
        var active = [UInt32](repeating: 0, count: (Int(count) + 31) / 32)
        let r = qx_ethtool_features(name.rawValue, count, &names, &active)
        if r < 0 { throw .system(SystemError("ETHTOOL_GFEATURES on '\(name)' in \(namespace)", negated: r)) }
        var result: [String: Bool] = [:]
        for i in 0..<Int(r) {
            let bytes = names[(i * 32)..<(i * 32 + 32)].prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            let feature = String(decoding: bytes, as: UTF8.self)
            if feature.isEmpty { continue }
            result[feature] = active[i / 32] & (1 << UInt32(i % 32)) != 0
        }
        return LinkFeatures(active: result)
    }

    func delete(_ name: InterfaceName, deviceDirectory: String?) throws(NetPlumbingError) {
        try socket.delete(name)
        if let deviceDirectory {
            let path = deviceDirectory.hasSuffix("/") ? deviceDirectory + name.rawValue : deviceDirectory + "/" + name.rawValue
            var major: UInt32 = 0
            var minor: UInt32 = 0
            if qx_char_device_numbers(path, &major, &minor) == 0 && unlink(path) < 0 && Glibc.errno != ENOENT {
                throw .system(SystemError("unlink \(path)", errno: Glibc.errno))
            }
        }
    }

    // MARK: ownership

    func ownedLinks() throws(NetPlumbingError) -> [OwnedLink] {
        try socket.links().compactMap { link in
            link.tag.map { OwnedLink(name: link.name, index: link.index, kind: link.kind, tag: $0) }
        }
    }

    func reap(knownVMs: Set<String>) throws(NetPlumbingError) -> [OwnedLink] {
        var removed: [OwnedLink] = []
        for owned in try ownedLinks() where !knownVMs.contains(owned.tag.vmID) {
            guard let name = try? InterfaceName(owned.name) else { continue }
            do {
                try socket.delete(name)
                removed.append(owned)
            } catch .linkNotFound {
                // Gone with its veth peer or by someone else meanwhile.
                removed.append(owned)
            }
        }
        return removed
    }
}
