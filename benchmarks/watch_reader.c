/* A watch_writer reader in C.
 *
 * Usage: watch_reader lib <path>       the library's watch: poll(peerreg_watch_fd) then
 *                                      peerreg_watch_next(w, 0); the seq is read from the event
 *        watch_reader inotify <path>   the floor: raw inotify on the directory (IN_MOVED_TO of
 *                                      servers.json), no parsing, no diff; counts renames
 *
 * Prints "ready", then "<seq> <CLOCK_MONOTONIC ns>" per event, stamped as the event reaches this
 * code. */
#define _GNU_SOURCE
#include "bench_common.h"
#include "peer_registry.h"
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

static int raw_inotify(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *name = slash ? slash + 1 : path;
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0 || inotify_add_watch(fd, dir, IN_MOVED_TO) < 0) { perror("inotify"); return 1; }
    printf("ready\n");
    fflush(stdout);
    char buf[sizeof(struct inotify_event) + NAME_MAX + 1] __attribute__((aligned(__alignof__(struct inotify_event))));
    int seq = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 1;
        long long t = now_ns();
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            if (e->len && strcmp(e->name, name) == 0) {
                printf("%d %lld\n", ++seq, t);
                fflush(stdout);
            }
            p += sizeof(struct inotify_event) + e->len;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: watch_reader lib|inotify <path>\n"); return 2; }
    if (strcmp(argv[1], "inotify") == 0) return raw_inotify(argv[2]);
    peerreg_registry *r = NULL;
    peerreg_watch *w = NULL;
    peerreg_error *err = NULL;
    if (peerreg_open(&r, argv[2], &err) || peerreg_watch_open(&w, r, &err)) {
        fprintf(stderr, "watch_reader: %s\n", peerreg_error_message(err));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    struct pollfd p = {peerreg_watch_fd(w), POLLIN, 0};
    for (;;) {
        if (poll(&p, 1, -1) < 0 && errno != EINTR) return 1;
        char *event = NULL;
        int rc = peerreg_watch_next(w, 0, &event, &err);
        if (rc == PEERREG_ETIMEOUT) { peerreg_error_free(err); err = NULL; continue; }
        if (rc) { fprintf(stderr, "watch_reader: %s\n", peerreg_error_message(err)); return 1; }
        long long t = now_ns();
        const char *s = strstr(event, "\"seq\":");
        if (s) {
            printf("%d %lld\n", atoi(s + 6), t);
            fflush(stdout);
        }
        peerreg_free(event);
    }
}
