#ifndef REGISTRY_SHIMS_H
#define REGISTRY_SHIMS_H
/* Internal helpers for RegistryKit that need C: descriptor tracking across fork().
 * Not part of the public ABI (hidden by the library's version script). */

/* Remembers fd as owned by the library in this process. In a child created by fork() every
 * tracked descriptor is closed (the child must not hold the parent's lease locks, or the
 * parent's death would go unseen). Returns 0, or -1 if memory ran out. */
int prshim_track_fd(int fd);

/* Forgets fd (call before closing it). Unknown fds are ignored. */
void prshim_untrack_fd(int fd);

/* How many times this process's ancestry forked since the library loaded: 0 in the original
 * process, incremented in each child. A plain memory read, unlike getpid() (a system call). */
int prshim_fork_generation(void);

/* Number of fds currently tracked (for tests). */
int prshim_tracked_count(void);

/* epoll and timerfd, which Swift's Glibc module does not import. All descriptors are
 * O_CLOEXEC and non-blocking. Return -1 with errno set on failure. */
int prshim_epoll_create(void);
int prshim_epoll_add(int epfd, int fd);          /* watch fd for readability */
int prshim_epoll_wait(int epfd, int timeout_ms); /* number ready (0 on timeout) */
int prshim_timerfd_create(void);                 /* CLOCK_MONOTONIC */
int prshim_timerfd_arm(int fd, long long ms);    /* one shot in ms; 0 disarms */

#endif
