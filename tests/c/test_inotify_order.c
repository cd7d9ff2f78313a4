/* The kernel ordering the lease tracker relies on (Sources/RegistryKit/Internal/Leases.swift, LeaseTracker):
 * when a process holding flock(LOCK_EX) on a file it opened read-write dies, the inotify
 * IN_CLOSE_WRITE event for that file is queued *before* the lock is released. So a watcher that
 * finds the lock free must already find the close event in its queue. Checked here for real:
 * a child takes the lock and is SIGKILLed; the parent spins on a non-blocking shared lock and, the
 * moment it gets it, reads the inotify queue without waiting. If this ever fails on a kernel, run
 * with PEER_REGISTRY_NO_LEASE_CACHE=1 there (the tracker is then off; every check is made in full).
 *
 *   test_inotify_order DIR [ROUNDS]      prints "inotify order: N passed, M failed" */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

static int queued_close_for(int ifd, const char *name) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int found = 0;
    for (;;) {
        ssize_t n = read(ifd, buf, sizeof buf);
        if (n <= 0) break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if ((ev->mask & IN_CLOSE_WRITE) && ev->len && strcmp(ev->name, name) == 0) found = 1;
            p += sizeof *ev + ev->len;
        }
    }
    return found;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s DIR [ROUNDS]\n", argv[0]); return 64; }
    int rounds = argc > 2 ? atoi(argv[2]) : 300;
    char path[4096];
    snprintf(path, sizeof path, "%s/order.lease", argv[1]);
    int passed = 0, failed = 0;
    for (int round = 0; round < rounds; round++) {
        int ready[2];
        if (pipe(ready) != 0) { perror("pipe"); return 1; }
        pid_t child = fork();
        if (child == 0) {
            int fd = open(path, O_RDWR | O_CREAT, 0600);
            if (fd < 0 || flock(fd, LOCK_EX) != 0) _exit(2);
            char c = 1;
            if (write(ready[1], &c, 1) != 1) _exit(3);
            for (;;) pause();
        }
        close(ready[1]);
        char c;
        if (read(ready[0], &c, 1) != 1) { fprintf(stderr, "child failed to lock\n"); return 1; }
        close(ready[0]);
        int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ifd < 0 || inotify_add_watch(ifd, argv[1], IN_CLOSE_WRITE) < 0) { perror("inotify"); return 1; }
        int probe = open(path, O_RDONLY);
        if (probe < 0) { perror("open"); return 1; }
        kill(child, SIGKILL);
        while (flock(probe, LOCK_SH | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK && errno != EINTR) { perror("flock"); return 1; }
        }
        if (queued_close_for(ifd, "order.lease")) passed++; else failed++;
        close(probe);
        close(ifd);
        waitpid(child, NULL, 0);
    }
    unlink(path);
    printf("inotify order: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
