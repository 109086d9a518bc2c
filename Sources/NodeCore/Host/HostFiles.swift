import LinuxSys

#if canImport(Glibc)
import Glibc
#endif

/// File-system steps of host preparation, done on descriptors so a symlink planted in a runtime
/// directory is never followed.
enum HostFiles {
    /// `mkdir -p`; directories it creates get `mode` (before umask), existing ones are kept.
    static func makeDirectories(_ path: String, mode: mode_t) throws(SystemError) {
        var current = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            current += "/" + component
            if mkdir(current, mode) != 0 {
                let code = errno
                guard code == EEXIST else { throw SystemError("mkdir \(current)", errno: code) }
                var info = stat()
                guard stat(current, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                    throw SystemError("mkdir \(current): exists and is not a directory", errno: ENOTDIR)
                }
            }
        }
    }

    /// Creates `path` (its parent must exist) or takes the existing directory, refusing a symlink,
    /// then sets its owner and exact mode.
    static func ownedDirectory(_ path: String, mode: mode_t, uid: uid_t, gid: gid_t) throws(SystemError) {
        if mkdir(path, 0o700) != 0, errno != EEXIST { throw SystemError("mkdir \(path)", errno: errno) }
        let fd = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        if fchown(fd.rawValue, uid, gid) != 0 { throw SystemError("chown \(uid):\(gid) \(path)", errno: errno) }
        if fchmod(fd.rawValue, mode) != 0 { throw SystemError("chmod \(String(mode, radix: 8)) \(path)", errno: errno) }
    }

    /// Removes `path` and everything below it without following symlinks; a missing path is fine.
    static func removeTree(_ path: String) throws(SystemError) {
        var info = stat()
        if lstat(path, &info) != 0 {
            if errno == ENOENT { return }
            throw SystemError("lstat \(path)", errno: errno)
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            let fd = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            try removeContents(of: fd.rawValue, path: path)
            if rmdir(path) != 0 && errno != ENOENT { throw SystemError("rmdir \(path)", errno: errno) }
        } else if unlink(path) != 0 && errno != ENOENT {
            throw SystemError("unlink \(path)", errno: errno)
        }
    }

    private static func removeContents(of directory: Int32, path: String) throws(SystemError) {
        for name in try names(in: directory, path: path) {
            var info = stat()
            if fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) != 0 {
                if errno == ENOENT { continue }
                throw SystemError("stat \(path)/\(name)", errno: errno)
            }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                let child = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { throw SystemError("open \(path)/\(name)", errno: errno) }
                let owned = FileDescriptor(adopting: child)
                try removeContents(of: owned.rawValue, path: "\(path)/\(name)")
                if unlinkat(directory, name, AT_REMOVEDIR) != 0 && errno != ENOENT {
                    throw SystemError("rmdir \(path)/\(name)", errno: errno)
                }
            } else if unlinkat(directory, name, 0) != 0 && errno != ENOENT {
                throw SystemError("unlink \(path)/\(name)", errno: errno)
            }
        }
    }

    /// The entries of an open directory (the descriptor stays open and owned by the caller).
    private static func names(in directory: Int32, path: String) throws(SystemError) -> [String] {
        let copy = fcntl(directory, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw SystemError("dup \(path)", errno: errno) }
        guard let stream = fdopendir(copy) else {
            let code = errno
            close(copy)
            throw SystemError("fdopendir \(path)", errno: code)
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
