/// The cloud-hypervisor REST calls qarax makes, with their HTTP method and success statuses
/// (from the API document and the behaviour of the real VMM: 204 for most actions; 200 with JSON
/// for `vm.info`, `vm.counters`, `vmm.ping` and hot `vm.add-*`; 200 with an empty body for
/// `vmm.shutdown`).
public enum CHEndpoint: String, Sendable, CaseIterable {
    case vmmPing = "vmm.ping"
    case vmmShutdown = "vmm.shutdown"
    case vmCreate = "vm.create"
    case vmBoot = "vm.boot"
    case vmPause = "vm.pause"
    case vmResume = "vm.resume"
    case vmShutdown = "vm.shutdown"
    case vmReboot = "vm.reboot"
    case vmPowerButton = "vm.power-button"
    case vmDelete = "vm.delete"
    case vmInfo = "vm.info"
    case vmCounters = "vm.counters"
    case vmResize = "vm.resize"
    case vmAddNet = "vm.add-net"
    case vmAddDisk = "vm.add-disk"
    case vmRemoveDevice = "vm.remove-device"

    /// `GET` for queries, `PUT` for everything else.
    public var isGet: Bool {
        switch self {
        case .vmmPing, .vmInfo, .vmCounters: true
        default: false
        }
    }

    /// The request path on the API socket.
    public var path: String { "/api/v1/\(rawValue)" }

    /// Statuses that mean success. `vm.add-*` answer 200 with the new device when the VM runs
    /// (hot plug) and 204 when it is only created (cold add to the config).
    public var successStatuses: Set<Int> {
        switch self {
        case .vmmPing, .vmInfo, .vmCounters, .vmmShutdown: [200]
        case .vmAddNet, .vmAddDisk: [200, 204]
        default: [204]
        }
    }
}
