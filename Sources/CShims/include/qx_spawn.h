// qx_spawn.h: the jailed launcher's clone3 → execve child. Code between clone and exec must be
// straight-line C that allocates nothing; Swift prepares every byte the child touches.
#pragma once
#include <stdint.h>
#include <sys/types.h>

/// The child's setup steps, in the order they run. Values are reported to the parent on failure
/// and mirrored by Swift's `LaunchStep`; never renumber.
enum qx_spawn_step {
    QX_STEP_SIGNALS = 1,
    QX_STEP_CGROUP_V1 = 2,
    QX_STEP_SETSID = 3,
    QX_STEP_FDS = 4,
    QX_STEP_MOUNT_PRIVATE = 5,
    QX_STEP_BIND_MOUNTS = 6,
    QX_STEP_PIVOT_ROOT = 7,
    QX_STEP_RLIMITS = 8,
    QX_STEP_BOUNDING_SET = 9,
    QX_STEP_KEEP_CAPS = 10,
    QX_STEP_SETGROUPS = 11,
    QX_STEP_SETGID = 12,
    QX_STEP_SETUID = 13,
    QX_STEP_CAPSET = 14,
    QX_STEP_AMBIENT = 15,
    QX_STEP_CHDIR = 16,
    QX_STEP_NO_NEW_PRIVS = 17,
    QX_STEP_SECCOMP = 18,
    QX_STEP_EXEC = 19,
};

/// A bind mount into the jail; `target` is the host-side path (jail root + path inside the jail).
#define QX_MOUNT_READONLY 1u
#define QX_MOUNT_DEVICE 2u
struct qx_spawn_mount {
    const char *_Nullable source;
    const char *_Nullable target;
    unsigned int flags;
};

/// A parent descriptor placed at a fixed number in the child.
struct qx_spawn_fd {
    int parent_fd;
    int child_fd;
};

struct qx_spawn_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

struct qx_spawn_request {
    const char *_Nullable path;
    char *_Nullable const *_Nullable argv;
    char *_Nullable const *_Nullable envp;
    const char *_Nullable working_directory;

    int cgroup_v2_fd;  // -1: no CLONE_INTO_CGROUP
    const char *_Nullable const *_Nullable cgroup_v1_procs;  // v1 files the child writes "0" into (`tasks`)
    int cgroup_v1_count;
    int new_session;

    const struct qx_spawn_fd *_Nullable fds;
    int fd_count;
    int *_Nullable fd_scratch;  // fd_count ints the child may overwrite (its own copy)

    const char *_Nullable jail_root;  // non-NULL: CLONE_NEWNS + a tmpfs there + bind mounts + pivot_root
    const char *_Nullable const *_Nullable jail_directories;  // mount points made in the tmpfs, parents first
    int jail_directory_count;
    const char *_Nullable const *_Nullable jail_files;  // empty files made there (mount points of files)
    int jail_file_count;
    const struct qx_spawn_mount *_Nullable mounts;
    int mount_count;
    const char *_Nullable proc_target;  // non-NULL: a fresh procfs mounted there (host-side path)
    int new_pid_namespace;

    const struct qx_spawn_rlimit *_Nullable rlimits;
    int rlimit_count;

    int set_ids;
    uid_t uid;
    gid_t gid;
    const gid_t *_Nullable groups;
    int group_count;

    int cap_last;  // /proc/sys/kernel/cap_last_cap
    uint64_t cap_bounding, cap_permitted, cap_effective, cap_inheritable, cap_ambient;
    int no_new_privs;

    const void *_Nullable seccomp_filter;  // struct sock_filter[seccomp_length]
    unsigned short seccomp_length;
};

struct qx_spawn_result {
    int pid;
    int pidfd;
    int failed_step;   // 0, or the qx_spawn_step that failed (the child was reaped)
    int failed_errno;
};

// clone3(CLONE_PIDFD…) + the child's setup + execve; waits until exec succeeded or a step failed.
// Returns 0 (see result->failed_step) or -errno when the parent could not start the child.
// Blocks the calling thread, which needs 40 KiB of free stack (the child runs on 32 KiB of it).
int qx_spawn(const struct qx_spawn_request *_Nonnull request, struct qx_spawn_result *_Nonnull result);

// waitid(P_PIDFD, WEXITED): blocks; `code` is CLD_EXITED/CLD_KILLED/CLD_DUMPED. Glibc's Swift
// import lacks P_PIDFD and siginfo's si_status is a macro.
int qx_pidfd_wait(int pidfd, int *_Nonnull code, int *_Nonnull status);

// waitid(P_PIDFD, WEXITED|WNOHANG): 1 when it exited (and was reaped), 0 when still running.
int qx_pidfd_try_wait(int pidfd, int *_Nonnull code, int *_Nonnull status);
