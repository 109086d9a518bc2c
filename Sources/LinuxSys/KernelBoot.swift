/// The running kernel's boot, as the kernel names it.
///
/// A record stamped with it can tell whether what it describes — a process, a cgroup, a link —
/// can still exist: none of them outlives the kernel, and after a reboot a pid and start time
/// (or a cgroup name) may well come back for something else.
public enum KernelBoot {
    /// `/proc/sys/kernel/random/boot_id`: a random UUID drawn at each boot; nil when unreadable.
    public static let id: String? = {
        guard let text = try? readProcFile("/proc/sys/kernel/random/boot_id") else { return nil }
        let id = CgroupFS.trim(text)
        return id.isEmpty ? nil : id
    }()
}
