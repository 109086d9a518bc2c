import Foundation
public import VMModel

/// Where a VM's host files may live on this node: kernels, initramfs and firmware under the image
/// roots, disk images under the disk roots.
///
/// A path is accepted only if it is absolute, has no `..` component, exists, and — with every
/// symlink resolved (realpath) — still lies under one of the roots (themselves resolved), compared
/// on a path-component boundary (`/srv/images-evil` is not under `/srv/images`).
public struct PathPolicy: Hashable, Sendable {
    public let imageRoots: [String]
    public let diskRoots: [String]

    public init(imageRoots: [String], diskRoots: [String]) {
        self.imageRoots = imageRoots
        self.diskRoots = diskRoots
    }

    /// `spec` with each file path replaced by its resolved, symlink-free form; or every problem.
    public func resolve(_ spec: VMSpec) throws(SpecValidationError) -> VMSpec {
        var resolved = spec
        var problems: [SpecProblem] = []
        func apply(_ path: String?, field: String, roots: [String], disk: Bool) -> String? {
            guard let path else { return nil }
            switch check(path, field: field, roots: roots, allowBlockDevice: disk) {
            case .success(let canonical): return canonical
            case .failure(let problem):
                problems.append(problem)
                return path
            }
        }
        resolved.payload.kernel = apply(spec.payload.kernel, field: "payload.kernel", roots: imageRoots, disk: false)
        resolved.payload.initramfs = apply(spec.payload.initramfs, field: "payload.initramfs", roots: imageRoots, disk: false)
        resolved.payload.firmware = apply(spec.payload.firmware, field: "payload.firmware", roots: imageRoots, disk: false)
        for (index, disk) in spec.disks.enumerated() where !disk.vhostUser {
            resolved.disks[index].path = apply(disk.path, field: "disks[\(index)].path", roots: diskRoots, disk: true)
        }
        guard problems.isEmpty else { throw SpecValidationError(problems: problems) }
        return resolved
    }

    /// Resolves `path` and checks it lies under one of `roots`; `field` names it in the problem.
    /// Regular files are accepted, and block devices when `allowBlockDevice`.
    public func check(_ path: String, field: String, roots: [String], allowBlockDevice: Bool = false) -> Result<String, SpecProblem> {
        func problem(_ reason: String) -> Result<String, SpecProblem> { .failure(SpecProblem(field: field, reason: reason)) }
        if let reason = SpecPath.problem(path) { return problem(reason) }
        let resolvedRoots = roots.compactMap { try? Self.realpath($0).get() }
        let rootList = roots.joined(separator: ", ")
        guard !resolvedRoots.isEmpty else { return problem("no allowed root exists on this node (\(rootList))") }
        let canonical: String
        switch Self.realpath(path) {
        case .success(let resolved): canonical = resolved
        case .failure(let error): return problem("\"\(path)\" cannot be resolved: \(error.reason)")
        }
        guard resolvedRoots.contains(where: { Self.isWithin(canonical, root: $0) }) else {
            let shown = canonical == path ? "\"\(path)\" is" : "\"\(path)\" resolves to \"\(canonical)\","
            return problem("\(shown) outside the allowed roots (\(rootList))")
        }
        var info = stat()
        guard stat(canonical, &info) == 0 else {
            return problem("\"\(path)\" cannot be examined: \(String(cString: strerror(errno)))")
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .success(canonical)
        case S_IFBLK where allowBlockDevice: return .success(canonical)
        case S_IFDIR: return problem("\"\(path)\" is a directory")
        default: return problem("\"\(path)\" is not a regular file\(allowBlockDevice ? " or block device" : "")")
        }
    }

    /// True when `path` is `root` or below it, compared on component boundaries.
    static func isWithin(_ path: String, root: String) -> Bool {
        if root == "/" { return path.hasPrefix("/") }
        return path == root || path.hasPrefix(root + "/")
    }

    struct ResolveError: Error {
        let reason: String
    }

    /// realpath(3): the absolute path with every symlink, `.` and `..` resolved.
    static func realpath(_ path: String) -> Result<String, ResolveError> {
        guard let resolved = Glibc.realpath(path, nil) else {
            let code = errno
            switch code {
            case ENOENT: return .failure(ResolveError(reason: "it (or a symlink target on the way) does not exist"))
            case ELOOP: return .failure(ResolveError(reason: "too many levels of symbolic links"))
            default: return .failure(ResolveError(reason: String(cString: strerror(code))))
            }
        }
        defer { free(resolved) }
        return .success(String(cString: resolved))
    }
}
