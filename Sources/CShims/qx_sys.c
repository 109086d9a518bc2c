#include "qx_sys.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int qx_errno(void) { return errno; }

int qx_pidfd_open(pid_t pid, unsigned int flags) {
    long r = syscall(SYS_pidfd_open, pid, flags);
    return r < 0 ? -errno : (int)r;
}

int qx_pidfd_send_signal(int pidfd, int sig) {
    long r = syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
    return r < 0 ? -errno : 0;
}

int qx_setns(int fd, int nstype) { return setns(fd, nstype) < 0 ? -errno : 0; }
int qx_unshare(int flags) { return unshare(flags) < 0 ? -errno : 0; }

int qx_clone_newnet(void) { return CLONE_NEWNET; }
int qx_clone_newns(void) { return CLONE_NEWNS; }
int qx_clone_fs(void) { return CLONE_FS; }

int qx_memfd_create(const char *name, unsigned int flags) {
    int r = memfd_create(name, flags);
    return r < 0 ? -errno : r;
}
