#ifndef REGISTRY_SHIMS_H
#define REGISTRY_SHIMS_H
/* Internal helpers for RegistryKit that need C: descriptor tracking across fork().
 * Not part of the public ABI (hidden by the library's version script). */

/* The library's descriptors are tracked: in a child created by fork() every tracked descriptor
 * is closed (the child must not hold the parent's lease locks, or the parent's death would go
 * unseen while the child lives). */

/* Holds off fork() (takes the table's lock, which fork's prepare handler also takes) until
 * prshim_fork_release, which tracks fd (if >= 0) and lets fork proceed. Open a descriptor the
 * library owns between the two, so that no child can inherit it untracked. */
void prshim_fork_hold(void);
int prshim_fork_release(int fd);
/* Tracks fd; only between prshim_fork_hold and prshim_fork_release. */
int prshim_track_fd_locked(int fd);

/* Forgets fd and closes it, both under the table's lock, so that no other thread can be given
 * the same number in between. A descriptor that is not in the table is NOT closed (returns -2):
 * closing it again would close whatever now has that number — a socket of the host program's,
 * say — so a double close in the library is refused and counted instead. */
int prshim_close_tracked(int fd);
/* How many closes prshim_close_tracked refused (double closes caught); for tests. */
long prshim_refused_closes(void);

/* How many times this process's ancestry forked since the library loaded: 0 in the original
 * process, incremented in each child. A plain memory read, unlike getpid() (a system call). */
int prshim_fork_generation(void);

/* epoll and timerfd, which Swift's Glibc module does not import. All descriptors are
 * O_CLOEXEC and non-blocking. Return -1 with errno set on failure. */
int prshim_epoll_create(void);
int prshim_epoll_add(int epfd, int fd);          /* watch fd for readability */
int prshim_epoll_wait(int epfd, int timeout_ms); /* number ready (0 on timeout) */
int prshim_timerfd_create(void);                 /* CLOCK_MONOTONIC */
int prshim_timerfd_arm(int fd, long long ms);    /* one shot in ms; 0 disarms */

/* pipe2(O_CLOEXEC | O_NONBLOCK), which Swift's Glibc module does not import. */
int prshim_pipe_cloexec(int fds[2]);
/* flock(2), for code where Swift resolves `flock` to the struct of the same name. */
int prshim_flock(int fd, int operation);
/* Open-file-description byte locks (fcntl F_OFD_*, independent of flock) on one byte at
 * `offset`: the writers' "waiting" marker (docs/FORMAT.md, "Writing").
 * prshim_ofd_share: a shared lock, not waiting (0, or -1 with errno).
 * prshim_ofd_unlock: releases this description's lock on the byte.
 * prshim_ofd_contended: 1 when another description holds a lock on the byte, 0 when none,
 * -1 with errno. */
int prshim_ofd_share(int fd, long offset);
int prshim_ofd_unlock(int fd, long offset);
int prshim_ofd_contended(int fd, long offset);

/* Whether needle occurs in haystack (memmem). */
int prshim_contains(const void *haystack, long haystack_len, const void *needle, long needle_len);

#endif
