public import VMModel

/// The parameters an operation was accepted with (stored as JSON in `operations.request`).
public struct OperationRequest: Codable, Sendable, Hashable {
    public var vmName: String?
    public var nic: NICSpec?
    public var network: String?
    public var disk: DiskSpec?
    public var image: ImageAddRequest?

    public init(vmName: String? = nil, nic: NICSpec? = nil, network: String? = nil, disk: DiskSpec? = nil,
                image: ImageAddRequest? = nil) {
        self.vmName = vmName
        self.nic = nic
        self.network = network
        self.disk = disk
        self.image = image
    }

    enum CodingKeys: String, CodingKey {
        case vmName = "vm_name", nic, network, disk, image
    }
}

/// What a finished operation produced (stored as JSON in `operations.result`).
public struct OperationResult: Codable, Sendable, Hashable {
    public var vmId: String?
    public var imageId: String?

    public init(vmId: String? = nil, imageId: String? = nil) {
        self.vmId = vmId
        self.imageId = imageId
    }

    enum CodingKeys: String, CodingKey {
        case vmId = "vm_id", imageId = "image_id"
    }
}

/// `POST /v1/images`: register a file; the control daemon measures its size and SHA-256.
public struct ImageAddRequest: Codable, Sendable, Hashable {
    public var name: String
    public var kind: ImageKind
    public var path: String
    /// When given, the measured digest must match.
    public var sha256: String?
    /// Nodes (names or ids) that have the file at `path`; every node when omitted.
    public var nodes: [String]?

    public init(name: String, kind: ImageKind, path: String, sha256: String? = nil, nodes: [String]? = nil) {
        self.name = name
        self.kind = kind
        self.path = path
        self.sha256 = sha256
        self.nodes = nodes
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, kind, path, sha256, nodes }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.strictBody(CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        kind = try c.decode(ImageKind.self, forKey: .kind)
        path = try c.decode(String.self, forKey: .path)
        sha256 = try c.decodeIfPresent(String.self, forKey: .sha256)
        nodes = try c.decodeIfPresent([String].self, forKey: .nodes)
    }
}
