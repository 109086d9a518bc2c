// qx_sys.h: small syscall wrappers Swift's Glibc module cannot see (it is built without _GNU_SOURCE).
// Every function returns >= 0 on success or -errno on failure.
#pragma once
#include <sys/types.h>
#include <stdint.h>

// Glibc's errno is a macro over a thread-local; Swift reads it reliably through this.
int qx_errno(void);

// pidfd_open(2): no glibc wrapper on Debian 12.
int qx_pidfd_open(pid_t pid, unsigned int flags);

// pidfd_send_signal(2): no glibc wrapper on Debian 12.
int qx_pidfd_send_signal(int pidfd, int sig);

// setns(2) and unshare(2) are hidden without _GNU_SOURCE.
int qx_setns(int fd, int nstype);
int qx_unshare(int flags);

// CLONE_NEWNET / CLONE_NEWNS / CLONE_FS values, hidden without _GNU_SOURCE.
int qx_clone_newnet(void);
int qx_clone_newns(void);
int qx_clone_fs(void);

// memfd_create(2), hidden without _GNU_SOURCE.
int qx_memfd_create(const char *_Nonnull name, unsigned int flags);
