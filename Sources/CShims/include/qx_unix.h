// qx_unix.h: Unix-domain socket calls that need CMSG_* macros (SCM_RIGHTS) or sockaddr_un layout.
// Every function returns >= 0 on success or -errno on failure.
#pragma once
#include <stddef.h>
#include <sys/types.h>

// The most descriptors one message carries (the kernel's SCM_MAX_FD is 253).
#define QX_UNIX_MAX_FDS 32

// sendmsg(2) with `nfds` descriptors as SCM_RIGHTS ancillary data (CMSG_* are macros), MSG_NOSIGNAL.
// Returns the number of bytes sent.
ssize_t qx_unix_send_fds(int sock, const void *_Nonnull buf, size_t len,
                         const int *_Nullable fds, int nfds);

// recvmsg(2) collecting SCM_RIGHTS descriptors (close-on-exec) into `fds` (room for `max_fds`);
// `*nfds` receives their count, `*truncated` 1 when the kernel dropped descriptors (MSG_CTRUNC).
// Returns the number of bytes read (0 at end of stream).
ssize_t qx_unix_recv_fds(int sock, void *_Nonnull buf, size_t len,
                         int *_Nonnull fds, int max_fds, int *_Nonnull nfds, int *_Nonnull truncated);

// sockaddr_un has a fixed-size char array Swift sees as a tuple: bind + listen on `path`.
int qx_unix_listen(const char *_Nonnull path, int backlog);

// connect(2) to a Unix stream socket at `path`; returns the connected descriptor (close-on-exec).
// `timeout_ms` > 0 bounds a connect blocked on a full listen backlog (SO_SNDTIMEO; -EAGAIN then).
int qx_unix_connect(const char *_Nonnull path, int timeout_ms);

// accept4(2) with SOCK_CLOEXEC: hidden from Swift's Glibc module without _GNU_SOURCE.
int qx_unix_accept(int listener);
