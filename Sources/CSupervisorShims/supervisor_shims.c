#define _GNU_SOURCE
#include "supervisor_shims.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t request_ready = PTHREAD_COND_INITIALIZER;
static pthread_cond_t request_done = PTHREAD_COND_INITIALIZER;
static pthread_cond_t children_exist = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t spawn_serial = PTHREAD_MUTEX_INITIALIZER;
static int started = 0;
static int live_children = 0;
static sup_exit_callback exit_callback = NULL;

struct request {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    sup_child *out;
    int result;
    int pending;
    int done;
};
static struct request *current = NULL;

static volatile sig_atomic_t keeper_group = 0;

static void keeper_on_parent_death(int sig) {
    (void)sig;
    kill(-(pid_t)keeper_group, SIGKILL); /* the keeper is in the group: this ends it too */
    _exit(137);
}

static void reset_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &dfl, NULL); /* EINVAL for the reserved real-time signals: ignored */
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void report_and_exit(int errfd, int err) {
    ssize_t ignored = write(errfd, &err, sizeof err);
    (void)ignored;
    _exit(127);
}

/* In the keeper (a fork of a multithreaded process): async-signal-safe calls only. */
static void run_keeper(struct request *r, pid_t supervisor, int in_r, int out_w, int err_w, int errfd) {
    setpgid(0, 0);
    keeper_group = getpid();
    reset_signals();
    struct sigaction on_death;
    memset(&on_death, 0, sizeof on_death);
    on_death.sa_handler = keeper_on_parent_death;
    sigaction(SIGUSR1, &on_death, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGUSR1) != 0) report_and_exit(errfd, errno);
    if (getppid() != supervisor) _exit(137); /* the supervisor died before prctl took effect */

    if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0) report_and_exit(errfd, errno);
    close_range(3, (unsigned)errfd - 1, 0);
    close_range((unsigned)errfd + 1, ~0U, 0);

    pid_t keeper = getpid();
    pid_t server = _Fork();
    if (server < 0) report_and_exit(errfd, errno);
    if (server == 0) {
        sigaction(SIGUSR1, &(struct sigaction){ .sa_handler = SIG_DFL }, NULL);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) report_and_exit(errfd, errno);
        if (getppid() != keeper) _exit(137);
        if (r->cwd && chdir(r->cwd) != 0) report_and_exit(errfd, errno);
        execve(r->path, r->argv, r->envp);
        report_and_exit(errfd, errno);
    }
    /* The keeper holds nothing of the server's: its stdio and the error pipe go. A stop
     * (killpg SIGTERM) is for the server; the keeper waits for it and exits the same way. */
    close(errfd);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) { dup2(devnull, 0); dup2(devnull, 1); dup2(devnull, 2); if (devnull > 2) close(devnull); }
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    int status = 0;
    while (waitpid(server, &status, 0) < 0) {
        if (errno != EINTR) _exit(126);
    }
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    kill(getpid(), sig);
    _exit(128 + sig);
}

static void close_pair(int p[2]) {
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
}

static int do_spawn(struct request *r) {
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 ||
        pipe2(report, O_CLOEXEC) != 0) {
        int e = errno;
        close_pair(in); close_pair(out); close_pair(err); close_pair(report);
        return e;
    }
    pid_t supervisor = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close_pair(in); close_pair(out); close_pair(err); close_pair(report);
        return e;
    }
    if (pid == 0) {
        close(report[0]);
        run_keeper(r, supervisor, in[0], out[1], err[1], report[1]);
        _exit(127);
    }
    /* Both the supervisor and the keeper set the group, so it exists before either acts. */
    setpgid(pid, pid);
    pthread_mutex_lock(&lock);
    live_children++;
    pthread_cond_signal(&children_exist);
    pthread_mutex_unlock(&lock);
    close(in[0]); close(out[1]); close(err[1]); close(report[1]);
    int child_errno = 0;
    ssize_t n;
    do { n = read(report[0], &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof child_errno) {
        /* exec failed: the keeper exits; the reaper reaps it. */
        close(in[1]); close(out[0]); close(err[0]);
        return child_errno ? child_errno : EIO;
    }
    r->out->pid = pid;
    r->out->stdin_fd = in[1];
    r->out->stdout_fd = out[0];
    r->out->stderr_fd = err[0];
    return 0;
}

static void *spawner_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (current == NULL || !current->pending) pthread_cond_wait(&request_ready, &lock);
        struct request *r = current;
        r->pending = 0;
        pthread_mutex_unlock(&lock);
        int result = do_spawn(r);
        pthread_mutex_lock(&lock);
        r->result = result;
        r->done = 1;
        pthread_cond_broadcast(&request_done);
    }
    return NULL;
}

static void *reaper_main(void *unused) {
    (void)unused;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (live_children <= 0) pthread_cond_wait(&children_exist, &lock);
        pthread_mutex_unlock(&lock);
        int status = 0;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == ECHILD) {
                pthread_mutex_lock(&lock);
                live_children = 0;
                pthread_mutex_unlock(&lock);
            }
            continue;
        }
        pthread_mutex_lock(&lock);
        if (live_children > 0) live_children--;
        sup_exit_callback callback = exit_callback;
        pthread_mutex_unlock(&lock);
        if (callback) callback(pid, status);
    }
    return NULL;
}

int sup_init(sup_exit_callback callback) {
    pthread_mutex_lock(&lock);
    if (started) { pthread_mutex_unlock(&lock); return 0; }
    exit_callback = callback;
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) < 0) {
            int devnull = open("/dev/null", O_RDWR);
            if (devnull >= 0 && devnull != fd) { dup2(devnull, fd); close(devnull); }
        }
    }
    /* Grandchildren that leave the keeper's group and are orphaned come to us, to be reaped. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t spawner, reaper;
    int e = pthread_create(&spawner, &attr, spawner_main, NULL);
    if (e == 0) e = pthread_create(&reaper, &attr, reaper_main, NULL);
    pthread_attr_destroy(&attr);
    if (e == 0) started = 1;
    pthread_mutex_unlock(&lock);
    return e;
}

int sup_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, sup_child *out) {
    if (!path || !argv || !envp || !out) return EINVAL;
    pthread_mutex_lock(&spawn_serial);
    struct request r = { path, argv, envp, cwd, out, 0, 1, 0 };
    pthread_mutex_lock(&lock);
    if (!started) {
        pthread_mutex_unlock(&lock);
        pthread_mutex_unlock(&spawn_serial);
        return EAGAIN;
    }
    current = &r;
    pthread_cond_signal(&request_ready);
    while (!r.done) pthread_cond_wait(&request_done, &lock);
    current = NULL;
    pthread_mutex_unlock(&lock);
    pthread_mutex_unlock(&spawn_serial);
    return r.result;
}

int sup_killpg(int pgid, int sig) {
    if (pgid <= 1) return EINVAL;
    if (kill(-(pid_t)pgid, sig) != 0) return errno == ESRCH ? 0 : errno;
    return 0;
}

int sup_exited(int status) { return WIFEXITED(status); }
int sup_exit_code(int status) { return WEXITSTATUS(status); }
int sup_signaled(int status) { return WIFSIGNALED(status); }
int sup_term_signal(int status) { return WTERMSIG(status); }
