extension SeccompPolicy {
    /// The outer filter for VMM processes (cloud-hypervisor, QEMU microvm): a superset of what they
    /// need, with their own, finer per-thread filters kept on underneath.
    ///
    /// Built from cloud-hypervisor's `vmm/src/seccomp_filters.rs` (every thread's list, including
    /// the seccomp/prctl it needs to install those filters), Firecracker's
    /// `resources/seccomp/*.json`, and what QEMU's event loop, block and net back ends and glibc
    /// start-up call. Left out on purpose: mounts and namespaces, ptrace and cross-process memory,
    /// module and kexec loading, bpf and perf, keyrings, clock setting, reboot, identity changes.
    /// Denied calls fail with EPERM: a VMM degrades rather than dies on a missing rule (operators
    /// wanting kill-on-violation load a policy file with `"default_action": "kill"`).
    public static let vmmDefault = SeccompPolicy(defaultAction: .errno, rules: vmmRules)

    // Namespace-creating clone flags: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
    private static let namespaceCloneFlags: UInt64 = 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000
        | 0x1000_0000 | 0x2000_0000 | 0x4000_0000
    private static let afUnix: UInt64 = 1
    private static let afInet: UInt64 = 2
    private static let afInet6: UInt64 = 10
    private static let tiocsti: UInt64 = 0x5412

    private static func allow(_ reason: String, _ names: String...) -> [SeccompRule] {
        names.map { SeccompRule($0, reason: reason) }
    }

    private static let vmmRules: [SeccompRule] =
        allow("the exec that starts the VMM happens after the filter is loaded", "execve")
        + allow("process and thread exit", "exit", "exit_group")
        + allow("libc and Rust start-up: TLS, robust futex list, restartable sequences",
                "arch_prctl", "set_tid_address", "set_robust_list", "get_robust_list", "rseq")
        + allow("heap and guest memory: anonymous/shared/hugetlb mappings, memory balloon, NUMA placement",
                "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "msync", "mincore",
                "mlock", "mlock2", "munlock", "mlockall", "munlockall",
                "mbind", "get_mempolicy", "set_mempolicy", "membarrier")
        + allow("guest RAM and shared memory backed by memfd (vhost-user, virtio-fs, snapshots)", "memfd_create")
        + [
            SeccompRule("clone", arguments: [SeccompArgumentCondition(index: 0, .maskedEqual, 0, mask: namespaceCloneFlags)],
                        reason: "threads for vCPUs, devices and the API server; never with namespace flags"),
            SeccompRule("clone3", action: .errno(38),
                        reason: "ENOSYS: its flags sit in memory a filter cannot read, so libc falls back to clone, which is checked"),
        ]
        + allow("older cloud-hypervisor lists fork; no namespace can be created through it", "fork", "vfork")
        + allow("thread synchronisation", "futex", "sched_yield")
        + allow("vCPU pinning, priorities and affinity queries (CH --cpus affinity, QEMU thread pools)",
                "sched_getaffinity", "sched_setaffinity", "sched_getscheduler", "sched_setscheduler",
                "sched_getparam", "sched_setparam", "sched_get_priority_max", "sched_get_priority_min",
                "getpriority", "setpriority", "getcpu", "ioprio_get", "ioprio_set")
        + allow("own process and thread ids, credentials queries", "getpid", "getppid", "gettid", "getuid", "geteuid",
                "getgid", "getegid", "getresuid", "getresgid", "getgroups", "getpgid", "getpgrp", "getsid", "capget")
        + allow("cloud-hypervisor's pty handling detaches into its own session", "setsid")
        + allow("signals: vCPU kicks (SIGRTMIN+n via tgkill), handlers, signalfd in QEMU's main loop",
                "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigqueueinfo",
                "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "signalfd", "signalfd4", "tgkill", "tkill", "kill", "restart_syscall")
        + allow("children of the VMM (none expected) and its own thread joins", "wait4", "waitid")
        + allow("installing the VMM's own per-thread filters, naming threads, querying the process",
                "prctl", "seccomp")
        + allow("cloud-hypervisor's optional landlock sandbox", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self")
        + allow("resource limits queried and lowered", "getrlimit", "setrlimit", "prlimit64", "getrusage", "times", "sysinfo", "uname", "umask")
        + allow("clocks and timers: event loops, rate limiters, RTC/PIT emulation",
                "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
                "timerfd_create", "timerfd_settime", "timerfd_gettime",
                "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
                "setitimer", "getitimer", "alarm")
        + allow("event loops: epoll (CH), ppoll (QEMU main loop), eventfds for irqfd/ioeventfd",
                "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
                "poll", "ppoll", "select", "pselect6", "eventfd", "eventfd2")
        + allow("asynchronous block I/O: io_uring (CH, QEMU aio=io_uring) and Linux AIO (QEMU aio=native)",
                "io_uring_setup", "io_uring_enter", "io_uring_register",
                "io_setup", "io_destroy", "io_submit", "io_getevents", "io_pgetevents", "io_cancel")
        + allow("disk images, kernels, sockets and device fds: plain file I/O",
                "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
                "lseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "flock", "pipe", "pipe2",
                "fsync", "fdatasync", "sync_file_range", "fallocate", "ftruncate", "fadvise64", "readahead",
                "copy_file_range", "sendfile", "splice", "tee")
        + allow("opening and inspecting files inside the jail (disk images, /dev/kvm, /dev/net/tun, /proc/self)",
                "open", "openat", "openat2", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
                "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd",
                "chdir", "fchdir")
        + allow("snapshots and API sockets: create and remove files inside the jail",
                "unlink", "unlinkat", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "fchmod")
        + [
            SeccompRule("ioctl", arguments: [SeccompArgumentCondition(index: 1, .notEqual, tiocsti)],
                        reason: "KVM, TUN/TAP, vhost, VFIO, block and tty requests (the VMM's inner filters pin the exact numbers); never TIOCSTI, which types into a terminal"),
            SeccompRule("socket", arguments: [SeccompArgumentCondition(index: 0, .equal, afUnix)],
                        reason: "API, vhost-user and serial sockets"),
            SeccompRule("socket", arguments: [SeccompArgumentCondition(index: 0, .equal, afInet)],
                        reason: "the AF_INET socket CH uses for SIOCSIF* on its TAP devices"),
            SeccompRule("socket", arguments: [SeccompArgumentCondition(index: 0, .equal, afInet6)],
                        reason: "QEMU/CH migration and VNC listeners over IPv6"),
            SeccompRule("socketpair", arguments: [SeccompArgumentCondition(index: 0, .equal, afUnix)],
                        reason: "internal notification pairs"),
        ]
        + allow("sockets handed over or created above: API server, migration, vhost-user, vsock proxy",
                "bind", "listen", "accept", "accept4", "connect", "shutdown", "getsockname", "getpeername",
                "getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg")
        + allow("entropy for virtio-rng, hash seeds and TLS", "getrandom")
}
