// qx_reactor.h: epoll, eventfd and waitid(P_PIDFD) for the supervisor's reactor thread.
// Swift's Glibc module does not include <sys/epoll.h> or <sys/eventfd.h>, `struct epoll_event` is
// packed on x86_64, and siginfo's si_status/si_code are macros: all are wrapped here.
// Every function returns >= 0 on success or -errno on failure.
#pragma once
#include <stdint.h>

/// One ready event, unpacked: the token given at registration and the epoll event bits.
typedef struct qx_ready_event {
    uint64_t token;
    uint32_t events;
} qx_ready_event;

/// EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP / EPOLLRDHUP bit values (constants Swift cannot see).
uint32_t qx_epollin(void);
uint32_t qx_epollerr(void);
uint32_t qx_epollhup(void);
uint32_t qx_epollrdhup(void);

// epoll_create1(EPOLL_CLOEXEC): header not visible from Swift.
int qx_epoll_create(void);

// epoll_ctl(ADD/MOD/DEL) with the packed epoll_event built here; `token` comes back in events.
int qx_epoll_add(int epfd, int fd, uint32_t events, uint64_t token);
int qx_epoll_mod(int epfd, int fd, uint32_t events, uint64_t token);
int qx_epoll_del(int epfd, int fd);

// epoll_wait unpacking the packed events into `out`; returns the count (0 on EINTR).
int qx_epoll_wait(int epfd, qx_ready_event *_Nonnull out, int capacity, int timeout_ms);

// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): header not visible from Swift.
int qx_eventfd(void);
// Adds 1 to the eventfd counter (wakes the reactor).
int qx_eventfd_signal(int fd);
// Resets the eventfd counter; returns 0 also when it was already 0.
int qx_eventfd_drain(int fd);

/// How a child ended, decoded from siginfo (si_code / si_status are macros).
typedef struct qx_child_exit {
    int32_t pid;     ///< 0 when nothing was waitable yet (WNOHANG).
    int32_t kind;    ///< 1 exited, 2 killed by a signal, 3 killed and dumped core.
    int32_t status;  ///< exit status for kind 1, signal number for kinds 2 and 3.
} qx_child_exit;

// waitid(P_PIDFD, pidfd, WEXITED | WNOHANG): reaps our child; -ECHILD when it is not our child.
int qx_waitid_pidfd(int pidfd, qx_child_exit *_Nonnull out);

// pipe2(O_CLOEXEC) is hidden without _GNU_SOURCE; both ends close-on-exec from the start, so a
// concurrent spawn elsewhere in the process never inherits them.
int qx_pipe_cloexec(int *_Nonnull read_end, int *_Nonnull write_end);

// pthread_setname_np is hidden without _GNU_SOURCE; names the calling thread (<= 15 bytes) for top/ps.
int qx_name_current_thread(const char *_Nonnull name);
