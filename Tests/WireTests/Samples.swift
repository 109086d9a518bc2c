import Foundation
import NIOCore
import VMModel
@testable import Wire

/// One sample of every message, every request operation, response result and event kind.
enum Samples {
    static func request(_ op: WireRequest.OneOf_Op) -> WireRequest {
        var request = WireRequest()
        request.op = op
        return request
    }

    static func response(_ result: WireResponse.OneOf_Result) -> WireResponse {
        var response = WireResponse()
        response.result = result
        return response
    }

    static func event(_ kind: WireEvent.OneOf_Kind) -> WireEvent {
        var event = WireEvent()
        event.sequence = 7
        event.unixMs = 1_700_000_000_000
        event.kind = kind
        return event
    }

    static var inventory: WireNodeInventory {
        var node = WireNodeInventory()
        node.hostname = "host-a"
        node.cpus = 2
        node.memoryBytes = 24 << 30
        var pool = WireHugepagePool()
        pool.pageSizeBytes = 2 << 20
        pool.numaNode = 0
        pool.total = 512
        pool.free = 500
        var gigantic = WireHugepagePool()
        gigantic.pageSizeBytes = 1 << 30
        gigantic.numaNode = -1
        gigantic.total = 1
        node.hugepages = [pool, gigantic]
        node.kvm = true
        node.kvmFlavor = "kvm_pvm"
        var ch = WireVMMBackend()
        ch.name = "cloud-hypervisor"
        ch.version = "v48.0"
        ch.path = "/usr/local/bin/cloud-hypervisor"
        node.backends = [ch]
        var bridge = WireBridge()
        bridge.name = "br0"
        bridge.mtu = 9000
        node.bridges = [bridge]
        node.macvtapParents = ["eth0"]
        node.nodeVersion = "0.1.0"
        var numa = WireNUMANode()
        numa.id = 0
        numa.cpus = [0, 1]
        numa.memoryBytes = 24 << 30
        node.numaNodes = [numa]
        return node
    }

    static var vmStatus: WireVMStatus {
        var status = WireVMStatus()
        status.id = "vm-1"
        status.name = "web"
        status.state = .running
        status.vmmPid = 4242
        status.backend = "cloud-hypervisor"
        status.stateSinceUnixMs = 1_700_000_000_000
        status.specJson = Data(#"{"name":"web"}"#.utf8)
        return status
    }

    static func ref(_ vm: String) -> WireVMRef {
        var ref = WireVMRef()
        ref.vm = vm
        return ref
    }

    static var requests: [WireRequest] {
        var create = WireCreateVM()
        create.specJson = Data(#"{"name":"web"}"#.utf8)
        create.start = true
        var stop = WireStopVM()
        stop.vm = "web"
        stop.force = true
        stop.graceMs = 1500
        var list = WireListVMs()
        list.stateFilter = .running
        var tail = WireConsoleTail()
        tail.vm = "web"
        tail.maxBytes = 4096
        var nic = WireAddNIC()
        nic.vm = "web"
        nic.nicJson = Data(#"{"kind":"tap"}"#.utf8)
        var disk = WireAddDisk()
        disk.vm = "web"
        disk.diskJson = Data(#"{"path":"/var/lib/qarax/d.raw"}"#.utf8)
        var remove = WireRemoveDevice()
        remove.vm = "web"
        remove.deviceID = "net1"
        return [
            request(.create(create)), request(.start(ref("web"))), request(.stop(stop)),
            request(.pause(ref("web"))), request(.resume(ref("web"))), request(.reboot(ref("web"))),
            request(.delete(ref("web"))), request(.info(ref("web"))), request(.list(list)),
            request(.consoleTail(tail)), request(.addNic(nic)), request(.removeNic(remove)),
            request(.addDisk(disk)), request(.removeDisk(remove)), request(.nodeInfo(WireNodeInfoRequest())),
        ]
    }

    static var responses: [WireResponse] {
        var list = WireVMList()
        list.vms = [vmStatus, vmStatus]
        var console = WireConsoleData()
        console.data = Data("login: ".utf8)
        console.truncated = true
        var device = WireDeviceAdded()
        device.deviceID = "net1"
        device.pciBdf = "0000:00:05.0"
        return [response(.vm(vmStatus)), response(.vms(list)), response(.console(console)),
                response(.device(device)), response(.done(WireEmpty())), response(.node(inventory))]
    }

    static var events: [WireEvent] {
        var report = WireVMInventoryReport()
        report.vms = [vmStatus]
        var changed = WireVMStateChanged()
        changed.vmID = "vm-1"
        changed.from = .starting
        changed.to = .running
        var exited = WireVMExited()
        exited.vmID = "vm-1"
        exited.reason = .crashed
        exited.signal = 9
        exited.detail = "killed by SIGKILL"
        var boot = WireBootTimings()
        boot.vmID = "vm-1"
        boot.spawnUs = 900
        boot.apiReadyUs = 2500
        boot.bootUs = 6100
        var resources = WireResourceReport()
        resources.memoryFreeBytes = 20 << 30
        resources.vcpusAllocated = 4
        resources.hugepages = inventory.hugepages
        resources.load1 = 0.25
        resources.vmsRunning = 1
        return [event(.inventory(report)), event(.stateChanged(changed)), event(.exited(exited)),
                event(.bootTimings(boot)), event(.resources(resources))]
    }

    static var messages: [WireMessage] {
        var hello = WireHandshake.hello(from: WireLocalIdentity(
            role: .node, name: "node-1", capabilities: ["events", "hotplug"], node: inventory, softwareVersion: "0.1.0"))
        hello.protocolVersions = [1, 2]
        var ack = WireHelloAck()
        ack.protocolVersion = 1
        ack.role = .control
        ack.name = "qarax-control"
        ack.capabilities = ["events"]
        ack.heartbeatIntervalMs = 5000
        var beat = WireHeartbeat()
        beat.unixMs = 1_700_000_000_123
        var beatAck = WireHeartbeatAck()
        beatAck.unixMs = 1_700_000_000_123
        var goodbye = WireGoodbye()
        goodbye.reason = WireErrorMapping.make(.protocol, "bad magic")
        return [.hello(hello), .helloAck(ack), .heartbeat(beat), .heartbeatAck(beatAck), .goodbye(goodbye),
                .goodbye(WireGoodbye()),
                .error(WireErrorMapping.make(.invalidArgument, "70000 is above 65535", field: "nics[1].mtu")),
                .error(WireErrorMapping.make(.system, "open /dev/kvm", errno: 13))]
            + requests.map(WireMessage.request) + responses.map(WireMessage.response) + events.map(WireMessage.event)
    }

    /// `messages` encoded back to back, with distinct request ids.
    static func stream() throws -> (bytes: ByteBuffer, frames: [WireFrame]) {
        var bytes = ByteBuffer()
        var frames: [WireFrame] = []
        for (index, message) in messages.enumerated() {
            let frame = try WireEnvelope(requestID: UInt64(index + 1), message).frame()
            try WireFrameEncoder.write(frame, to: &bytes)
            frames.append(frame)
        }
        return (bytes, frames)
    }
}
