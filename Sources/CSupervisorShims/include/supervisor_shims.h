#ifndef SUPERVISOR_SHIMS_H
#define SUPERVISOR_SHIMS_H
/* Process spawning for RegistryGateway's supervisor: what Swift cannot do between fork and exec.
 *
 * Every server runs under a tiny keeper process (a second fork of the supervisor, never exec'd):
 *
 *   supervisor ── keeper (process group leader, PR_SET_PDEATHSIG=SIGUSR1, ignores SIGTERM)
 *                   └── server (execve'd: argv, exact env, cwd; PR_SET_PDEATHSIG=SIGKILL)
 *                         └── whatever it starts (same process group unless it leaves it)
 *
 * When the supervisor dies, however it dies (SIGKILL included), the kernel sends the keeper
 * SIGUSR1 and the keeper SIGKILLs the whole process group, grandchildren (npx -> node) included,
 * then exits. The supervisor stops a server with killpg(SIGTERM), then killpg(SIGKILL).
 *
 * PR_SET_PDEATHSIG fires when the *thread* that forked exits, so every fork of the supervisor
 * happens on one spawner thread that lives as long as the process. One reaper thread reaps
 * every child (waitpid(-1)) and reports each exit through the callback: no zombie stays. */

#include <sys/types.h>

typedef struct {
    int pid;        /* the keeper's pid, which is also the process group id */
    int stdin_fd;   /* write end of the server's stdin (O_CLOEXEC) */
    int stdout_fd;  /* read end of the server's stdout (O_CLOEXEC) */
    int stderr_fd;  /* read end of the server's stderr (O_CLOEXEC) */
} sup_child;

/* Called on the reaper thread for every child reaped: pid and the raw wait status. */
typedef void (*sup_exit_callback)(int pid, int status);

/* Starts the spawner and reaper threads once (later calls do nothing but return 0), makes
 * sure fds 0-2 are open, and makes this process a child subreaper. 0, or an errno. */
int sup_init(sup_exit_callback callback);

/* Spawns path with argv and envp (NULL-terminated) in directory cwd (NULL: the current one).
 * Returns 0 and fills *out, or an errno: of pipe/fork, or of chdir/execve in the child (then
 * nothing runs and nothing is left behind). */
int sup_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, sup_child *out);

/* killpg that tolerates a group already gone. 0 or an errno. */
int sup_killpg(int pgid, int sig);

/* Wait-status decoding, which Swift's Glibc does not import as functions. */
int sup_exited(int status);
int sup_exit_code(int status);
int sup_signaled(int status);
int sup_term_signal(int status);

#endif
