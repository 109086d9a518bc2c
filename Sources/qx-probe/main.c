// qx-probe: a tiny program the launcher tests start to look at the process from the inside.
//   qx-probe block          read stdin until EOF, then exit 0 (tests inspect /proc/PID meanwhile)
//   qx-probe syscall NAME   try one syscall (unshare, mount, getppid), print "errno=N", exit 0
//   qx-probe exit CODE      exit with CODE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int try_syscall(const char *name) {
    long r;
    if (strcmp(name, "unshare") == 0)
        r = syscall(SYS_unshare, 0);
    else if (strcmp(name, "mount") == 0)
        r = syscall(SYS_mount, "none", "/", "none", 0, NULL);
    else if (strcmp(name, "getppid") == 0)
        r = syscall(SYS_getppid);
    else if (strcmp(name, "ptrace") == 0)
        r = syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
    else {
        fprintf(stderr, "qx-probe: unknown syscall %s\n", name);
        return 2;
    }
    printf("errno=%d\n", r < 0 ? errno : 0);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "block") == 0) {
        char buffer[256];
        while (read(0, buffer, sizeof buffer) > 0) {}
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "syscall") == 0) return try_syscall(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "exit") == 0) return atoi(argv[2]);
    fprintf(stderr, "usage: qx-probe block | syscall NAME | exit CODE\n");
    return 2;
}
