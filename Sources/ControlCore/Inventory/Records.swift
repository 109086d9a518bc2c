public import Foundation
public import GRDB
public import VMModel

/// snake_case columns for every record.
public protocol InventoryRecord: Codable, Sendable, FetchableRecord, PersistableRecord {}

extension InventoryRecord {
    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { .convertFromSnakeCase }
    public static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { .convertToSnakeCase }
}

/// A row of `nodes`.
public struct NodeRecord: InventoryRecord, Hashable {
    public static let databaseTableName = "nodes"
    public var id: String
    public var name: String
    public var address: String
    public var status: NodeStatus
    public var maintenance: Bool
    public var inventory: NodeInventory?
    public var nodeVersion: String
    public var protocolVersion: Int
    public var lastSeen: Date?
    public var createdAt: Date
}

/// A row of `vms`: the operator's specification and both states.
public struct VMRecord: InventoryRecord, Hashable {
    public static let databaseTableName = "vms"
    public var id: String
    public var name: String
    public var spec: VMSpec
    public var vmm: VMMBackend
    public var desiredState: DesiredVMState
    public var observedState: ObservedVMState
    public var nodeId: String?
    public var pinnedNodeId: String?
    public var vcpus: Int
    public var memoryBytes: Int
    public var hugepageSize: Int?
    public var bootTimeMs: Double?
    public var createdAt: Date
    public var updatedAt: Date
}

extension NICKind: DatabaseValueConvertible {}

/// A row of `nics`: one virtio-net device of a VM.
public struct NICRecord: InventoryRecord, Hashable {
    public static let databaseTableName = "nics"
    public var id: Int64?
    public var vmId: String
    public var deviceId: String
    public var kind: NICKind
    /// The network (by name) the NIC is attached to, when it was placed through one.
    public var network: String?
    public var mac: String?
    public var spec: NICSpec

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// A row of `disks`: one virtio-block device of a VM.
public struct DiskRecord: InventoryRecord, Hashable {
    public static let databaseTableName = "disks"
    public var id: Int64?
    public var vmId: String
    public var deviceId: String
    public var imageId: String?
    public var path: String?
    public var readonly: Bool
    public var spec: DiskSpec

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// A row of `images`: a kernel, initramfs or disk file, with its size and SHA-256.
public struct ImageRecord: InventoryRecord, Hashable {
    public static let databaseTableName = "images"
    public var id: String
    public var name: String
    public var kind: ImageKind
    public var path: String
    public var sizeBytes: Int
    public var sha256: String
    public var createdAt: Date
}

/// A row of `image_nodes`: the image is present on that node.
public struct ImageNodeRecord: InventoryRecord, Hashable {
    public static let databaseTableName = "image_nodes"
    public var imageId: String
    public var nodeId: String
}

/// A row of `networks`: a named network on one node (its bridge or MACVTAP parent, and MTU).
public struct NetworkRecord: InventoryRecord, Hashable {
    public static let databaseTableName = "networks"
    public var id: String
    public var name: String
    public var nodeId: String
    public var kind: NetworkKind
    public var parent: String
    public var mtu: Int
    public var createdAt: Date
}

/// A row of `rate_limit_groups`: a token-bucket limiter disks can share.
public struct RateLimitGroupRecord: InventoryRecord, Hashable {
    public static let databaseTableName = "rate_limit_groups"
    public var id: String
    public var name: String
    public var limiter: RateLimiterSpec
    public var createdAt: Date
}

/// A row of `operations`: one accepted request that takes effect asynchronously.
public struct OperationRecord: InventoryRecord, Hashable {
    public static let databaseTableName = "operations"
    public var id: String
    public var kind: OperationKind
    public var status: OperationStatus
    public var vmId: String?
    public var nodeId: String?
    /// The client's idempotency key: a retry with the same key returns this operation.
    public var clientRequestId: String?
    /// The request's parameters, enough to resume the operation after a restart.
    public var request: OperationRequest
    /// Identifies the parameters, so a key reused for a different request is refused.
    public var requestDigest: String
    public var result: OperationResult?
    public var errorCode: String?
    public var errorMessage: String?
    public var errorField: String?
    public var progress: Double?
    public var attempts: Int
    public var createdAt: Date
    public var updatedAt: Date
    public var finishedAt: Date?
}

/// A row of `events`: the audit log (who did what, when).
public struct EventRecord: InventoryRecord, Hashable {
    public static let databaseTableName = "events"
    public var seq: Int64?
    public var at: Date
    /// Who: `api`, `node:<name>`, `control`.
    public var actor: String
    /// What, as `subject.verb` (`vm.create`, `node.down`).
    public var action: String
    public var subject: EventSubject
    public var subjectId: String?
    public var message: String

    public mutating func didInsert(_ inserted: InsertionSuccess) { seq = inserted.rowID }
}
