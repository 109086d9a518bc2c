// qx_seccomp.h: libseccomp's function-like action macros, which Swift cannot import.
#pragma once
#include <seccomp.h>
#include <stdint.h>

// SCMP_ACT_ERRNO(e): fail the syscall with errno e.
static inline uint32_t qx_scmp_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }
// SCMP_ACT_KILL_PROCESS: the whole process dies of SIGSYS.
static inline uint32_t qx_scmp_act_kill_process(void) { return SCMP_ACT_KILL_PROCESS; }
// SCMP_ACT_ALLOW.
static inline uint32_t qx_scmp_act_allow(void) { return SCMP_ACT_ALLOW; }
