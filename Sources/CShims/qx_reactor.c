#include "qx_reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

uint32_t qx_epollin(void) { return EPOLLIN; }
uint32_t qx_epollerr(void) { return EPOLLERR; }
uint32_t qx_epollhup(void) { return EPOLLHUP; }
uint32_t qx_epollrdhup(void) { return EPOLLRDHUP; }

int qx_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int qx_epoll_add(int epfd, int fd, uint32_t events, uint64_t token) { return ctl(epfd, EPOLL_CTL_ADD, fd, events, token); }
int qx_epoll_mod(int epfd, int fd, uint32_t events, uint64_t token) { return ctl(epfd, EPOLL_CTL_MOD, fd, events, token); }
int qx_epoll_del(int epfd, int fd) { return ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0); }

int qx_epoll_wait(int epfd, qx_ready_event *out, int capacity, int timeout_ms) {
    enum { batch = 64 };
    struct epoll_event evs[batch];
    if (capacity > batch) capacity = batch;
    int n = epoll_wait(epfd, evs, capacity, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        out[i].token = evs[i].data.u64;
        out[i].events = evs[i].events;
    }
    return n;
}

int qx_eventfd(void) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int qx_eventfd_signal(int fd) {
    uint64_t one = 1;
    for (;;) {
        ssize_t r = write(fd, &one, sizeof one);
        if (r == (ssize_t)sizeof one) return 0;
        if (r < 0 && errno == EINTR) continue;
        // EAGAIN: the counter is saturated, so the reactor is already due to wake.
        return (r < 0 && errno != EAGAIN) ? -errno : 0;
    }
}

int qx_eventfd_drain(int fd) {
    uint64_t value;
    for (;;) {
        ssize_t r = read(fd, &value, sizeof value);
        if (r >= 0) return 0;
        if (errno == EINTR) continue;
        return errno == EAGAIN ? 0 : -errno;
    }
}

int qx_waitid_pidfd(int pidfd, qx_child_exit *out) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    memset(out, 0, sizeof *out);
    for (;;) {
        if (waitid(P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG) == 0) break;
        if (errno == EINTR) continue;
        return -errno;
    }
    out->pid = info.si_pid;
    if (info.si_pid == 0) return 0;
    switch (info.si_code) {
    case CLD_EXITED: out->kind = 1; break;
    case CLD_KILLED: out->kind = 2; break;
    case CLD_DUMPED: out->kind = 3; break;
    default: return -EINVAL;
    }
    out->status = info.si_status;
    return 0;
}

int qx_pipe_cloexec(int *read_end, int *write_end) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    *read_end = fds[0];
    *write_end = fds[1];
    return 0;
}

int qx_name_current_thread(const char *name) {
    return -pthread_setname_np(pthread_self(), name);
}
