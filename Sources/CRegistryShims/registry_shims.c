#define _GNU_SOURCE
#include "registry_shims.h"
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

static pthread_mutex_t tracked_lock = PTHREAD_MUTEX_INITIALIZER;
static int *tracked = NULL;
static int tracked_len = 0, tracked_cap = 0;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static volatile int fork_generation = 0;
/* Set once a descriptor could not be tracked (no memory for the table): from then on a close of
 * an unknown descriptor cannot be told from a double close, and goes ahead. */
static int track_failed = 0;
static long refused_closes = 0;


/* fork() copies the table with the lock held by us (prepare), so the child sees a consistent
 * table and can close every inherited descriptor before anything else runs. */
static void on_prepare(void) { pthread_mutex_lock(&tracked_lock); }
static void on_parent(void) { pthread_mutex_unlock(&tracked_lock); }
static void on_child(void) {
    fork_generation++;
    for (int i = 0; i < tracked_len; i++) close(tracked[i]);
    tracked_len = 0;
    pthread_mutex_unlock(&tracked_lock);
}
static void install(void) { pthread_atfork(on_prepare, on_parent, on_child); }

/* Appends fd to the table; the caller holds tracked_lock. */
int prshim_track_fd_locked(int fd) {
    if (fd < 0) return 0;
    if (tracked_len == tracked_cap) {
        int cap = tracked_cap ? tracked_cap * 2 : 64;
        int *grown = realloc(tracked, (size_t)cap * sizeof *tracked);
        if (!grown) { track_failed = 1; return -1; }
        tracked = grown; tracked_cap = cap;
    }
    tracked[tracked_len++] = fd;
    return 0;
}

/* fork() takes tracked_lock in its prepare handler, so while it is held here no fork can copy
 * a descriptor that is open but not yet in the table. */
void prshim_fork_hold(void) {
    pthread_once(&atfork_once, install);
    pthread_mutex_lock(&tracked_lock);
}

int prshim_fork_release(int fd) {
    int rc = prshim_track_fd_locked(fd);
    pthread_mutex_unlock(&tracked_lock);
    return rc;
}

int prshim_close_tracked(int fd) {
    pthread_mutex_lock(&tracked_lock);
    int found = 0;
    for (int i = 0; i < tracked_len; i++) {
        if (tracked[i] == fd) { tracked[i] = tracked[--tracked_len]; found = 1; break; }
    }
    int rc;
    if (found || track_failed) {
        rc = close(fd);
    } else {
        refused_closes++;
        rc = -2;
    }
    pthread_mutex_unlock(&tracked_lock);
    return rc;
}

long prshim_refused_closes(void) {
    pthread_mutex_lock(&tracked_lock);
    long n = refused_closes;
    pthread_mutex_unlock(&tracked_lock);
    return n;
}

int prshim_fork_generation(void) { return fork_generation; }

int prshim_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int prshim_epoll_add(int epfd, int fd) {
    struct epoll_event ev = { .events = EPOLLIN, .data = { .fd = fd } };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int prshim_epoll_wait(int epfd, int timeout_ms) {
    struct epoll_event ev;
    return epoll_wait(epfd, &ev, 1, timeout_ms);
}

int prshim_timerfd_create(void) { return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC); }

int prshim_timerfd_arm(int fd, long long ms) {
    struct itimerspec spec = { 0 };
    if (ms > 0) {
        spec.it_value.tv_sec = (time_t)(ms / 1000);
        spec.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
    }
    return timerfd_settime(fd, 0, &spec, NULL);
}

int prshim_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC | O_NONBLOCK); }

int prshim_flock(int fd, int operation) { return flock(fd, operation); }

static int ofd_lock(int fd, long offset, short type, int cmd, struct flock *out) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)offset;
    fl.l_len = 1;
    int rc = fcntl(fd, cmd, &fl);
    if (out) *out = fl;
    return rc;
}

int prshim_ofd_share(int fd, long offset) { return ofd_lock(fd, offset, F_RDLCK, F_OFD_SETLK, NULL); }
int prshim_ofd_unlock(int fd, long offset) { return ofd_lock(fd, offset, F_UNLCK, F_OFD_SETLK, NULL); }
int prshim_ofd_contended(int fd, long offset) {
    struct flock fl;
    if (ofd_lock(fd, offset, F_WRLCK, F_OFD_GETLK, &fl) != 0) return -1;
    return fl.l_type != F_UNLCK;
}

int prshim_contains(const void *haystack, long haystack_len, const void *needle, long needle_len) {
    if (needle_len <= 0) return 1;
    if (haystack_len < needle_len) return 0;
    return memmem(haystack, (size_t)haystack_len, needle, (size_t)needle_len) != NULL;
}
