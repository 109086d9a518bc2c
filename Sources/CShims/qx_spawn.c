// The jailed launcher's child: everything between clone3 and execve.
//
// On x86_64 the child shares the parent's memory (CLONE_VM | CLONE_VFORK, as posix_spawn does) and
// runs on a stack carved from qx_spawn's frame while the calling thread is suspended; elsewhere it
// is a copy-on-write copy. Either way it is born from one thread of a multi-threaded Swift process
// whose other threads may hold locks (malloc, stdio, the Swift runtime) forever from its point of
// view, so the child calls only raw syscalls and async-signal-safe libc wrappers, allocates
// nothing, and writes only to its own stack and the request's fd_scratch. Identity changes use raw
// syscalls: glibc's setuid/setgroups broadcast to the threads glibc believes exist.
#include "qx_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// struct clone_args of <linux/sched.h>, which cannot be included next to glibc's <sched.h>.
struct qx_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

struct qx_report {
    int32_t step;
    int32_t error;
};

// Sends (step, errno) to the parent and ends the child. The pipe is the only way out: the child
// must not return into the parent's copied stack frames.
__attribute__((noreturn)) static void qx_fail(int report_fd, int step, int error) {
    struct qx_report r = {step, error};
    ssize_t n;
    do {
        n = write(report_fd, &r, sizeof r);
    } while (n < 0 && errno == EINTR);
    syscall(SYS_exit_group, 127);
    __builtin_unreachable();
}

static int qx_is_target(const struct qx_spawn_request *req, int fd) {
    for (int i = 0; i < req->fd_count; i++)
        if (req->fds[i].child_fd == fd) return 1;
    return 0;
}

static int qx_write_all(int fd, const char *bytes, size_t length) {
    while (length > 0) {
        ssize_t n = write(fd, bytes, length);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        bytes += n;
        length -= (size_t)n;
    }
    return 0;
}

static int qx_bind_mount(const struct qx_spawn_mount *m) {
    if (mount(m->source, m->target, NULL, MS_BIND, NULL) < 0) return -1;
    unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID;
    if (m->flags & QX_MOUNT_DEVICE)
        flags |= MS_NOEXEC;
    else
        flags |= MS_NODEV;
    if (m->flags & QX_MOUNT_READONLY) flags |= MS_RDONLY;
    return mount(NULL, m->target, NULL, flags, NULL);
}

__attribute__((noreturn)) static void qx_child(const struct qx_spawn_request *req, int report) {
    // 1. Signals. Every disposition back to default and the mask emptied. The parent blocked all
    //    signals around clone3, so none of its (Swift runtime) handlers can run in this copy; after
    //    this step a signal acts on the child as it would on a fresh process. SIG_IGN would survive
    //    execve, hence the reset; SIGKILL/SIGSTOP and glibc's internal signals refuse (EINVAL).
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigaction(sig, &dfl, NULL) < 0 && errno != EINVAL) qx_fail(report, QX_STEP_SIGNALS, errno);
    }
    sigset_t empty;
    sigemptyset(&empty);
    if (sigprocmask(SIG_SETMASK, &empty, NULL) < 0) qx_fail(report, QX_STEP_SIGNALS, errno);

    // 2. cgroup v1. Join the VM's groups before anything else so every later allocation (mount
    //    namespace, page tables, the exec'd image) is charged to the VM, and while the host's
    //    /sys/fs/cgroup is still visible (the jail hides it). The files are the groups' `tasks`:
    //    "0" there moves the writing thread, which is this whole process (it has no other thread),
    //    also inside a new PID namespace, without the global lock a `cgroup.procs` write takes
    //    (its write side waits for an RCU grace period). (v2 placement happened in clone3.)
    for (int i = 0; i < req->cgroup_v1_count; i++) {
        int fd = open(req->cgroup_v1_procs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0) qx_fail(report, QX_STEP_CGROUP_V1, errno);
        if (qx_write_all(fd, "0", 1) < 0) qx_fail(report, QX_STEP_CGROUP_V1, errno);
        close(fd);
    }

    // 3. New session: no controlling terminal, out of the node's process group, so a signal to the
    //    node's group (Ctrl-C, a service manager's group kill) does not reach the VMM.
    if (req->new_session && syscall(SYS_setsid) < 0) qx_fail(report, QX_STEP_SETSID, errno);

    // 4. Descriptors. Place the mapped fds and close everything else, before the jail is built so
    //    no inherited descriptor of a host directory or file lives on inside it. Sources and the
    //    report pipe first move above the highest target, so placing one target can never clobber
    //    a source still to be placed; the report pipe stays close-on-exec.
    int first_free = 3;
    for (int i = 0; i < req->fd_count; i++)
        if (req->fds[i].child_fd + 1 > first_free) first_free = req->fds[i].child_fd + 1;
    int moved_report = fcntl(report, F_DUPFD_CLOEXEC, first_free);
    if (moved_report < 0) qx_fail(report, QX_STEP_FDS, errno);
    report = moved_report;
    for (int i = 0; i < req->fd_count; i++) {
        int moved = fcntl(req->fds[i].parent_fd, F_DUPFD_CLOEXEC, first_free);
        if (moved < 0) qx_fail(report, QX_STEP_FDS, errno);
        req->fd_scratch[i] = moved;
    }
    for (int i = 0; i < req->fd_count; i++) {
        if (dup2(req->fd_scratch[i], req->fds[i].child_fd) < 0) qx_fail(report, QX_STEP_FDS, errno);
    }
    for (int fd = 0; fd < first_free; fd++)
        if (!qx_is_target(req, fd)) close(fd);
    if (report > first_free && syscall(SYS_close_range, first_free, report - 1, 0) < 0)
        qx_fail(report, QX_STEP_FDS, errno);
    if (syscall(SYS_close_range, report + 1, ~0U, 0) < 0) qx_fail(report, QX_STEP_FDS, errno);

    if (req->jail_root != NULL) {
        // 5. Mount propagation off. clone3 gave us a copy of the host's mounts; making them private
        //    keeps the jail's mounts out of the host and the host's later mounts out of the jail.
        //    pivot_root also refuses shared mounts.
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) qx_fail(report, QX_STEP_MOUNT_PRIVATE, errno);

        // 6. The jail: a tmpfs of its own on the jail root (pivot_root needs a mount point), the
        //    mount points made in it, then each entry bind-mounted onto its mount point, read-only
        //    where asked. The tmpfs exists only in this mount namespace: its mount points never
        //    touch the host's disk (making them there cost more than the whole rest of a launch)
        //    and go away with the VMM. Needs CAP_SYS_ADMIN, so before identities and capabilities
        //    change.
        if (mount("tmpfs", req->jail_root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16k") < 0)
            qx_fail(report, QX_STEP_BIND_MOUNTS, errno);
        for (int i = 0; i < req->jail_directory_count; i++)
            if (mkdir(req->jail_directories[i], 0755) < 0 && errno != EEXIST) qx_fail(report, QX_STEP_BIND_MOUNTS, errno);
        for (int i = 0; i < req->jail_file_count; i++) {
            int fd = open(req->jail_files[i], O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (fd < 0) qx_fail(report, QX_STEP_BIND_MOUNTS, errno);
            close(fd);
        }
        for (int i = 0; i < req->mount_count; i++)
            if (qx_bind_mount(&req->mounts[i]) < 0) qx_fail(report, QX_STEP_BIND_MOUNTS, errno);
        // A procfs of the child's own PID namespace (made by clone3 when asked), so /proc/self works
        // and the host's processes stay invisible.
        if (req->proc_target != NULL &&
            mount("proc", req->proc_target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
            qx_fail(report, QX_STEP_BIND_MOUNTS, errno);

        // 7. pivot_root into the jail and detach the old root, so nothing of the host's tree stays
        //    reachable (unlike chroot, which a process with a directory fd can leave).
        if (chdir(req->jail_root) < 0) qx_fail(report, QX_STEP_PIVOT_ROOT, errno);
        if (syscall(SYS_pivot_root, ".", ".") < 0) qx_fail(report, QX_STEP_PIVOT_ROOT, errno);
        if (umount2(".", MNT_DETACH) < 0) qx_fail(report, QX_STEP_PIVOT_ROOT, errno);
        if (chdir("/") < 0) qx_fail(report, QX_STEP_PIVOT_ROOT, errno);
    }

    // 8. Resource limits, while still privileged: raising a hard limit (MEMLOCK for hugepages or
    //    VFIO) needs CAP_SYS_RESOURCE, which the capability steps remove.
    for (int i = 0; i < req->rlimit_count; i++) {
        struct rlimit limit = {(rlim_t)req->rlimits[i].soft, (rlim_t)req->rlimits[i].hard};
        if (setrlimit((__rlimit_resource_t)req->rlimits[i].resource, &limit) < 0)
            qx_fail(report, QX_STEP_RLIMITS, errno);
    }

    // 9. Bounding set: drop every capability not kept. PR_CAPBSET_DROP needs CAP_SETPCAP in the
    //    effective set, so before setuid clears it. Bounds what any later execve can gain.
    for (int cap = 0; cap <= req->cap_last; cap++) {
        if (req->cap_bounding & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) qx_fail(report, QX_STEP_BOUNDING_SET, errno);
    }

    uint64_t kept = req->cap_permitted | req->cap_effective | req->cap_inheritable | req->cap_ambient;
    if (req->set_ids) {
        // 10. Keep permitted capabilities across the uid change only when some are to be kept;
        //     otherwise setuid away from root clears them all, which is what we want.
        if (kept != 0 && req->uid != 0 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
            qx_fail(report, QX_STEP_KEEP_CAPS, errno);
        // 11–13. Supplementary groups, then gid, then uid: each needs the privilege the next one
        //     removes (CAP_SETGID is gone once the uid is not 0). After mounts and rlimits, which
        //     need root, and before the capability sets, which setuid would reset.
        if (syscall(SYS_setgroups, req->group_count, req->groups) < 0) qx_fail(report, QX_STEP_SETGROUPS, errno);
        if (syscall(SYS_setresgid, req->gid, req->gid, req->gid) < 0) qx_fail(report, QX_STEP_SETGID, errno);
        if (syscall(SYS_setresuid, req->uid, req->uid, req->uid) < 0) qx_fail(report, QX_STEP_SETUID, errno);
    }

    // 14. Permitted, effective, inheritable: after setuid, which cleared effective (and permitted
    //     unless kept). capset can only lower permitted, so this is where the sets become exact.
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        data[i].effective = (uint32_t)(req->cap_effective >> (32 * i));
        data[i].permitted = (uint32_t)(req->cap_permitted >> (32 * i));
        data[i].inheritable = (uint32_t)(req->cap_inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &header, data) < 0) qx_fail(report, QX_STEP_CAPSET, errno);

    // 15. Ambient: cleared, then raised one by one. A capability can be ambient only when it is
    //     permitted and inheritable, so after capset. Ambient is what a non-root VMM keeps on exec.
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) qx_fail(report, QX_STEP_AMBIENT, errno);
    for (int cap = 0; cap <= req->cap_last && cap < 64; cap++) {
        if (!(req->cap_ambient & (1ULL << cap))) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) qx_fail(report, QX_STEP_AMBIENT, errno);
    }

    // 16. Working directory: after pivot_root (the path is the jail's) and after the identity
    //     change, so search permission is checked as the VMM's user.
    if (req->working_directory != NULL && chdir(req->working_directory) < 0) qx_fail(report, QX_STEP_CHDIR, errno);

    // 17. no_new_privs: before seccomp, because without CAP_SYS_ADMIN the kernel installs a filter
    //     only under no_new_privs; also makes setuid/file-capability binaries inert for the VMM.
    if (req->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) qx_fail(report, QX_STEP_NO_NEW_PRIVS, errno);

    // 18. Seccomp last, so the filter only has to allow execve and what the VMM itself needs, not
    //     the setup above. The program was compiled by libseccomp in the parent.
    if (req->seccomp_filter != NULL) {
        struct sock_fprog program = {req->seccomp_length, (struct sock_filter *)(uintptr_t)req->seccomp_filter};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) < 0) qx_fail(report, QX_STEP_SECCOMP, errno);
    }

    // 19. execve. On success the close-on-exec report pipe closes and the parent reads EOF.
    execve(req->path, req->argv, req->envp);
    qx_fail(report, QX_STEP_EXEC, errno);
}

#if defined(__x86_64__)
#define QX_CHILD_STACK (32 * 1024)

struct qx_child_start {
    const struct qx_spawn_request *request;
    int report_fd;
};

// The child's first C frame on its own stack.
__attribute__((noreturn, used)) static void qx_child_entry(struct qx_child_start *start) {
    qx_child(start->request, start->report_fd);
}

// clone3 with a new stack: the child returns from the syscall on that stack with no frame to go
// back to, so it must jump straight into C from assembly. Returns the pid (parent) or -errno.
static long qx_clone3_on_stack(struct qx_clone_args *args, struct qx_child_start *start) {
    register void *entry __asm__("r12") = (void *)qx_child_entry;
    register void *argument __asm__("r13") = start;
    long ret;
    __asm__ volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        "xor %%ebp, %%ebp\n\t"
        "mov %%r13, %%rdi\n\t"
        "call *%%r12\n\t"
        "hlt\n"
        "1:\n\t"
        : "=a"(ret)
        : "a"((long)SYS_clone3), "D"(args), "S"(sizeof *args), "r"(entry), "r"(argument)
        : "rcx", "r11", "memory");
    return ret;
}
#endif

int qx_spawn(const struct qx_spawn_request *request, struct qx_spawn_result *result) {
    memset(result, 0, sizeof *result);
    result->pid = -1;
    result->pidfd = -1;

    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) return -errno;

    struct qx_clone_args args;
    memset(&args, 0, sizeof args);
    int pidfd = -1;
    args.flags = CLONE_PIDFD;
    if (request->cgroup_v2_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)request->cgroup_v2_fd;
    }
    if (request->jail_root != NULL) args.flags |= CLONE_NEWNS;
    if (request->new_pid_namespace) args.flags |= CLONE_NEWPID;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;

    // All signals blocked across clone3: a handler of the parent must never run in the child.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
#if defined(__x86_64__)
    // Share the address space and suspend this thread until the child execs or exits (what
    // posix_spawn does): no page-table copy and no copy-on-write faults, whatever the parent's size.
    // The child runs on `stack`, a part of this frame this thread does not touch while suspended.
    char stack[QX_CHILD_STACK] __attribute__((aligned(16)));
    args.flags |= CLONE_VM | CLONE_VFORK;
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = sizeof stack;
    struct qx_child_start start = {request, pipe_fds[1]};
    long pid = qx_clone3_on_stack(&args, &start);
#else
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) qx_child(request, pipe_fds[1]);
#endif
    int clone_errno = pid < 0 ? (int)-pid : 0;
#if !defined(__x86_64__)
    if (pid < 0) clone_errno = errno;
#endif
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    close(pipe_fds[1]);
    if (pid < 0) {
        close(pipe_fds[0]);
        return -clone_errno;
    }

    // EOF: execve succeeded (or the child died before reporting, which the supervisor will see).
    struct qx_report report;
    size_t got = 0;
    while (got < sizeof report) {
        ssize_t n = read(pipe_fds[0], (char *)&report + got, sizeof report - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(pipe_fds[0]);

    if (got == sizeof report) {
        siginfo_t info;
        while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED) < 0 && errno == EINTR) {}
        close(pidfd);
        result->failed_step = report.step;
        result->failed_errno = report.error;
        return 0;
    }
    result->pid = (int)pid;
    result->pidfd = pidfd;
    return 0;
}

static int qx_waitid(int pidfd, int options, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do {
        r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | options);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    if (info.si_pid == 0) return 0;
    *code = info.si_code;
    *status = info.si_status;
    return 1;
}

int qx_pidfd_wait(int pidfd, int *code, int *status) {
    int r = qx_waitid(pidfd, 0, code, status);
    return r < 0 ? r : 0;
}

int qx_pidfd_try_wait(int pidfd, int *code, int *status) { return qx_waitid(pidfd, WNOHANG, code, status); }
