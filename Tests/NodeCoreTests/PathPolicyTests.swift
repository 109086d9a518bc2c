import Foundation
import Testing
import VMModel
@testable import NodeCore

/// A temporary tree: `<base>/images`, `<base>/disks`, `<base>/images-evil`, `<base>/outside`, removed on deinit.
private final class PolicyTree {
    let base: String
    let images: String
    let disks: String

    init() throws {
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("qarax-pathpolicy-XXXXXX").path
        var buffer = Array(template.utf8CString)
        guard let made = mkdtemp(&buffer) else { throw CocoaError(.fileWriteUnknown) }
        base = try PathPolicy.realpath(String(cString: made)).get()
        images = base + "/images"
        disks = base + "/disks"
        let fm = FileManager.default
        for dir in [images, disks, base + "/images-evil", base + "/outside", images + "/sub"] {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        for file in [images + "/vmlinux", images + "/sub/initrd", disks + "/root.img", base + "/images-evil/vmlinux",
                     base + "/outside/secret"] {
            try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        }
        try fm.createSymbolicLink(atPath: images + "/escape", withDestinationPath: base + "/outside/secret")
        try fm.createSymbolicLink(atPath: images + "/relative-escape", withDestinationPath: "../outside/secret")
        try fm.createSymbolicLink(atPath: images + "/current", withDestinationPath: "sub/initrd")
        try fm.createSymbolicLink(atPath: images + "/dangling", withDestinationPath: base + "/nowhere")
        try fm.createSymbolicLink(atPath: images + "/loop", withDestinationPath: images + "/loop")
        try fm.createSymbolicLink(atPath: disks + "/via-dir", withDestinationPath: base + "/outside")
        try fm.createSymbolicLink(atPath: base + "/images-link", withDestinationPath: images)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: base)
    }

    var policy: PathPolicy { PathPolicy(imageRoots: [images], diskRoots: [disks, "/nonexistent-root"]) }
}

@Suite struct PathPolicyTests {
    @Test func acceptsFilesUnderTheRootsAndCanonicalisesSymlinksInside() throws {
        let tree = try PolicyTree()
        #expect(try tree.policy.check(tree.images + "/vmlinux", field: "payload.kernel", roots: [tree.images]).get() == tree.images + "/vmlinux")
        #expect(try tree.policy.check(tree.images + "/current", field: "payload.initramfs", roots: [tree.images]).get()
                == tree.images + "/sub/initrd")
        // A root reached through a symlink is resolved too.
        #expect(try tree.policy.check(tree.images + "/vmlinux", field: "payload.kernel", roots: [tree.base + "/images-link"]).get()
                == tree.images + "/vmlinux")
    }

    @Test func rejectsEscapesAndNamesTheField() throws {
        let tree = try PolicyTree()
        let cases: [(String, String)] = [
            (tree.images + "/escape", "\"\(tree.images)/escape\" resolves to \"\(tree.base)/outside/secret\", outside the allowed roots (\(tree.images))"),
            (tree.images + "/relative-escape", "\"\(tree.images)/relative-escape\" resolves to \"\(tree.base)/outside/secret\", outside the allowed roots (\(tree.images))"),
            (tree.base + "/images-evil/vmlinux", "\"\(tree.base)/images-evil/vmlinux\" is outside the allowed roots (\(tree.images))"),
            (tree.images + "/../outside/secret", "\"\(tree.images)/../outside/secret\" has a \"..\" component"),
            ("images/vmlinux", "\"images/vmlinux\" is not an absolute path"),
            (tree.images + "/missing", "\"\(tree.images)/missing\" cannot be resolved: it (or a symlink target on the way) does not exist"),
            (tree.images + "/dangling", "\"\(tree.images)/dangling\" cannot be resolved: it (or a symlink target on the way) does not exist"),
            (tree.images + "/loop", "\"\(tree.images)/loop\" cannot be resolved: too many levels of symbolic links"),
            (tree.images + "/sub", "\"\(tree.images)/sub\" is a directory"),
        ]
        for (path, reason) in cases {
            let result = tree.policy.check(path, field: "payload.kernel", roots: [tree.images])
            #expect(throws: SpecProblem(field: "payload.kernel", reason: reason)) { try result.get() }
        }
        #expect(throws: SpecProblem(field: "x", reason: "no allowed root exists on this node (/nonexistent-a, /nonexistent-b)")) {
            try tree.policy.check(tree.images + "/vmlinux", field: "x", roots: ["/nonexistent-a", "/nonexistent-b"]).get()
        }
    }

    @Test func blockDevicesOnlyWhereAllowed() throws {
        let tree = try PolicyTree()
        let devices = (try? FileManager.default.contentsOfDirectory(atPath: "/dev")) ?? []
        let block = devices.map { "/dev/" + $0 }.first { path in
            var info = stat()
            return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFBLK
        }
        #expect(throws: SpecProblem(field: "d", reason: "\"/dev/null\" is not a regular file or block device")) {
            try tree.policy.check("/dev/null", field: "d", roots: ["/dev"], allowBlockDevice: true).get()
        }
        if let block {
            #expect(throws: SpecProblem.self) { try tree.policy.check(block, field: "payload.kernel", roots: ["/dev"]).get() }
            #expect(try tree.policy.check(block, field: "disks[0].path", roots: ["/dev"], allowBlockDevice: true).get() == block)
        }
    }

    @Test func resolvesAWholeSpecAndReportsEveryProblem() throws {
        let tree = try PolicyTree()
        var spec = VMSpec(name: "p", cpus: CPUSpec(bootVCPUs: 1), memory: MemorySpec(size: .mebibytes(64)),
                          payload: PayloadSpec(kernel: tree.images + "/vmlinux", initramfs: tree.images + "/current"),
                          disks: [DiskSpec(id: "root", path: tree.disks + "/root.img"),
                                  DiskSpec(id: "vu", vhostUser: true, vhostSocket: "/run/x.sock")])
        let resolved = try tree.policy.resolve(spec)
        #expect(resolved.payload.initramfs == tree.images + "/sub/initrd")
        #expect(resolved.disks[0].path == tree.disks + "/root.img")

        spec.payload.kernel = tree.images + "/escape"
        spec.payload.firmware = tree.disks + "/root.img"
        spec.disks[0].path = tree.disks + "/via-dir/secret"
        let error = try #require(throws: SpecValidationError.self) { try tree.policy.resolve(spec) }
        #expect(error.problems.map(\.field) == ["payload.kernel", "payload.firmware", "disks[0].path"])
        #expect(error.problems[2].reason.contains("resolves to \"\(tree.base)/outside/secret\""))
    }

    @Test(arguments: [("/srv/images", "/srv/images", true), ("/srv/images/a", "/srv/images", true),
                      ("/srv/images-evil/a", "/srv/images", false), ("/srv/image", "/srv/images", false),
                      ("/anything", "/", true), ("/srv", "/srv/images", false)])
    func componentBoundary(path: String, root: String, within: Bool) {
        #expect(PathPolicy.isWithin(path, root: root) == within)
    }
}
