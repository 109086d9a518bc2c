// qx_kvm.h: host probes for `qarax-node doctor` (KVM ioctls, seccomp availability, pipe2).
// Every function returns >= 0 on success or -errno on failure.
#pragma once
#include <stdint.h>

// KVM_GET_API_VERSION is a function-like ioctl macro Swift cannot import.
int qx_kvm_get_api_version(int kvm_fd);

// KVM_CREATE_VM is a function-like ioctl macro; returns the new VM's fd.
int qx_kvm_create_vm(int kvm_fd);

// prctl(2) is variadic: PR_GET_SECCOMP gives the caller's seccomp mode (0, 1 strict, 2 filter).
int qx_seccomp_mode(void);

// seccomp(2) has no glibc wrapper: SECCOMP_GET_ACTION_AVAIL for one of the actions below.
int qx_seccomp_action_available(uint32_t action);

// The SECCOMP_RET_* action values, from <linux/seccomp.h> (kept out of this header so it
// cannot clash with libseccomp's definitions).
uint32_t qx_seccomp_ret_kill_process(void);
uint32_t qx_seccomp_ret_errno(void);
uint32_t qx_seccomp_ret_trap(void);
uint32_t qx_seccomp_ret_log(void);
uint32_t qx_seccomp_ret_user_notif(void);

// pipe2(2) is hidden without _GNU_SOURCE: both ends close-on-exec, created atomically.
int qx_pipe2_cloexec(int fds[_Nonnull 2]);
