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

/* Number of fds currently tracked (for tests). */
int prshim_tracked_count(void);

#endif
