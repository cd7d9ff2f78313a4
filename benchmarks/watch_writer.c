/* Watch latency: the time from a writer's rename of servers.json to the event arriving in a
 * watcher (another process, in any language).
 *
 * Usage: watch_writer <dir> <changes> <warmup> <reader command...>
 *
 * The writer registers a static entry "watched", starts the reader (the registry path is
 * appended to its arguments), waits for it to print "ready", then changes the entry <warmup> +
 * <changes> times (metadata.seq = i). After each change it waits for the reader to print
 * "<seq> <t_ns>": the CLOCK_MONOTONIC time at which the event carrying seq reached the reader's
 * own code. One change at a time, so no two are coalesced.
 *
 * The rename time: this program defines renameat(), which the library calls (it is exported
 * by the executable, so the dynamic linker binds the library's reference to it), stamps
 * CLOCK_MONOTONIC just before the real renameat() of servers.json, and calls it. So three
 * figures per change:
 *   from rename   t_event - t_rename   (the event cannot be queued before the rename starts)
 *   from return   t_event - t_return   (after peerreg_register returned: a lower bound; it
 *                                       excludes the fsync of the directory and the unlock)
 *   from call     t_event - t_call     (before peerreg_register: an upper bound, the whole write)
 * Prints one line (microseconds): changes missed ren_p50 ren_p99 ren_max ret_p50 ret_p99 call_p50
 * call_p99 register_p50 post_rename_p50, or "changes missed" followed by n/a's when the
 * rename stamp is missing. With $WATCH_SAMPLES_FILE set, also writes there one line per change:
 * from_rename from_return from_call register post_rename (microseconds; nan when unstamped). */
#define _GNU_SOURCE
#include "bench_common.h"
#include "peer_registry.h"
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static long long last_rename_ns;

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    static int (*real)(int, const char *, int, const char *);
    if (!real) real = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
    const char *base = strrchr(newpath, '/');
    base = base ? base + 1 : newpath;
    long long t = now_ns();
    int rc = real(olddirfd, oldpath, newdirfd, newpath);
    if (rc == 0 && strcmp(base, "servers.json") == 0) last_rename_ns = t;
    return rc;
}

static char linebuf[65536];
static size_t linelen;

/* Reads one line from fd within timeout_ms; 1 on success, 0 on timeout, -1 at EOF. */
static int read_line(int fd, char *out, size_t n, int timeout_ms) {
    long long deadline = now_ns() + (long long)timeout_ms * 1000000LL;
    for (;;) {
        char *nl = memchr(linebuf, '\n', linelen);
        if (nl) {
            size_t l = (size_t)(nl - linebuf);
            if (l >= n) l = n - 1;
            memcpy(out, linebuf, l);
            out[l] = 0;
            size_t used = (size_t)(nl - linebuf) + 1;
            memmove(linebuf, linebuf + used, linelen - used);
            linelen -= used;
            return 1;
        }
        int left = (int)((deadline - now_ns()) / 1000000LL);
        if (left <= 0) return 0;
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, left);
        if (rc < 0 && errno == EINTR) continue;
        if (rc == 0) return 0;
        ssize_t m = read(fd, linebuf + linelen, sizeof linebuf - linelen - 1);
        if (m <= 0) return -1;
        linelen += (size_t)m;
    }
}

static void die(const char *what, peerreg_error *err) {
    fprintf(stderr, "watch_writer: %s: %s\n", what, err ? peerreg_error_message(err) : "failed");
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: watch_writer <dir> <changes> <warmup> <reader command...>\n"); return 2; }
    int changes = atoi(argv[2]), warmup = atoi(argv[3]);
    char path[4096], json[1024], meta[64], line[256];
    snprintf(path, sizeof path, "%s/servers.json", argv[1]);
    peerreg_registry *r = NULL;
    peerreg_error *err = NULL;
    if (peerreg_open(&r, path, &err)) die("open", err);
    bench_entry_json(json, sizeof json, "watched", 9997, "none", ",\"seq\":0");
    if (peerreg_register(r, json, NULL, &err)) die("register", err);

    int out[2];
    if (pipe(out)) return 1;
    pid_t reader = fork();
    if (reader == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        int nargs = argc - 4;
        char **args = calloc((size_t)nargs + 2, sizeof(char *));
        for (int i = 0; i < nargs; i++) args[i] = argv[4 + i];
        args[nargs] = path;
        execvp(args[0], args);
        perror("watch_writer: exec");
        _exit(127);
    }
    close(out[1]);
    if (read_line(out[0], line, sizeof line, 60000) != 1 || strcmp(line, "ready") != 0) {
        fprintf(stderr, "watch_writer: the reader did not start (%s)\n", line);
        kill(reader, SIGKILL);
        return 1;
    }
    double *from_rename = malloc(sizeof(double) * (size_t)changes), *from_return = malloc(sizeof(double) * (size_t)changes);
    double *from_call = malloc(sizeof(double) * (size_t)changes), *reg = malloc(sizeof(double) * (size_t)changes);
    double *post = malloc(sizeof(double) * (size_t)changes);
    int n = 0, missed = 0, stamped = 1;
    for (int seq = 1; seq <= warmup + changes; seq++) {
        snprintf(meta, sizeof meta, ",\"seq\":%d", seq);
        bench_entry_json(json, sizeof json, "watched", 9997, "none", meta);
        last_rename_ns = 0;
        long long t_call = now_ns();
        if (peerreg_register(r, json, NULL, &err)) die("register", err);
        long long t_return = now_ns(), t_rename = last_rename_ns;
        if (t_rename == 0) stamped = 0;
        long long t_event = -1;
        for (;;) {
            int rc = read_line(out[0], line, sizeof line, 5000);
            if (rc != 1) break; /* timeout or EOF: missed */
            int got;
            long long t;
            if (sscanf(line, "%d %lld", &got, &t) != 2) { fprintf(stderr, "watch_writer: reader said %s\n", line); break; }
            if (got == seq) { t_event = t; break; }
        }
        if (t_event < 0) {
            if (seq > warmup) missed++;
            continue;
        }
        if (seq <= warmup) continue;
        from_rename[n] = (double)(t_event - t_rename) / 1e3;
        from_return[n] = (double)(t_event - t_return) / 1e3;
        from_call[n] = (double)(t_event - t_call) / 1e3;
        reg[n] = (double)(t_return - t_call) / 1e3;
        post[n] = (double)(t_return - t_rename) / 1e3;
        n++;
    }
    const char *samples = getenv("WATCH_SAMPLES_FILE");
    if (samples && *samples) {
        FILE *f = fopen(samples, "w");
        if (!f) { perror(samples); return 1; }
        for (int i = 0; i < n; i++)
            fprintf(f, "%.1f %.1f %.1f %.1f %.1f\n", stamped ? from_rename[i] : NAN, from_return[i], from_call[i], reg[i],
                    stamped ? post[i] : NAN);
        fclose(f);
    }
    kill(reader, SIGTERM);
    waitpid(reader, NULL, 0);
    peerreg_close(r);
    size_t m = (size_t)n;
    if (!stamped) {
        printf("%d %d n/a n/a n/a %.1f %.1f %.1f %.1f %.1f n/a\n", n, missed, quantile(from_return, m, 0.5), quantile(from_return, m, 0.99),
               quantile(from_call, m, 0.5), quantile(from_call, m, 0.99), quantile(reg, m, 0.5));
        return 0;
    }
    printf("%d %d %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f\n", n, missed, quantile(from_rename, m, 0.5),
           quantile(from_rename, m, 0.99), quantile(from_rename, m, 1.0), quantile(from_return, m, 0.5),
           quantile(from_return, m, 0.99), quantile(from_call, m, 0.5), quantile(from_call, m, 0.99), quantile(reg, m, 0.5),
           quantile(post, m, 0.5));
    return 0;
}
