#include "qx_kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int qx_kvm_get_api_version(int kvm_fd) {
    int r = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
    return r < 0 ? -errno : r;
}

int qx_kvm_create_vm(int kvm_fd) {
    int r = ioctl(kvm_fd, KVM_CREATE_VM, 0UL);
    return r < 0 ? -errno : r;
}

int qx_seccomp_mode(void) {
    int r = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
    return r < 0 ? -errno : r;
}

int qx_seccomp_action_available(uint32_t action) {
    long r = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
    return r < 0 ? -errno : 0;
}

uint32_t qx_seccomp_ret_kill_process(void) { return SECCOMP_RET_KILL_PROCESS; }
uint32_t qx_seccomp_ret_errno(void) { return SECCOMP_RET_ERRNO; }
uint32_t qx_seccomp_ret_trap(void) { return SECCOMP_RET_TRAP; }
uint32_t qx_seccomp_ret_log(void) { return SECCOMP_RET_LOG; }
uint32_t qx_seccomp_ret_user_notif(void) { return SECCOMP_RET_USER_NOTIF; }

int qx_pipe2_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
}
