import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Removes the benchmark's (empty) cgroup parent from every hierarchy once its VMs are gone.
enum CgroupCleanup {
    static func remove(parent: String) {
        let root = "/sys/fs/cgroup"
        var candidates = [root + "/" + parent]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
            candidates.append("\(root)/\(entry)/\(parent)")
        }
        for path in candidates { _ = rmdir(path) }
    }
}
