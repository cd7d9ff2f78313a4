/* Contention: P processes writing at once, through the library or as the raw floor.
 *
 * Usage: contend <dir> <procs> <iterations> <base_entries> lib
 *        contend <dir> <procs> <iterations> <file_bytes> floor
 *
 *   lib:   the registry holds base_entries static entries; each of the P processes opens its own
 *          handle and loops `iterations` times over register (its own id, lease liveness),
 *          heartbeat, unregister — 3 durable writes per iteration.
 *   floor: each of the P processes does 3 * iterations floor writes (flock + write + fsync +
 *          rename + fsync of the directory) of a file of file_bytes bytes, under one shared lock.
 *
 * All processes start together (a pipe barrier); wall time runs from the release to the last
 * exit. Prints one line:
 *   ops wall_s ops_per_s all_p50 all_p99 op1_p50 op1_p99 op2_p50 op2_p99 op3_p50 op3_p99 file_bytes
 * latencies in microseconds; op1..3 are register / heartbeat / unregister (floor: three times
 * the same write). file_bytes (lib) is the mean size of the file during the run — base entries
 * plus half of the P entries — for the floor to write. CONTEND_SAMPLES=<file> also writes every
 * latency there, one per line. */
#define _GNU_SOURCE
#include "bench_common.h"
#include "peer_registry.h"
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what, peerreg_error *err) {
    fprintf(stderr, "contend: %s: %s\n", what, err ? peerreg_error_message(err) : "failed");
    _exit(1);
}

static double *samples; /* [proc][iteration][3] in shared memory */
static int iterations;

static void child_lib(int k, const char *path, int go_fd, int ready_fd) {
    peerreg_registry *r = NULL;
    peerreg_error *err = NULL;
    if (peerreg_open(&r, path, &err)) die("open", err);
    char id[32], json[1024];
    snprintf(id, sizeof id, "writer-%d", k);
    bench_entry_json(json, sizeof json, id, 30000 + k, "lease", NULL);
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1) _exit(1);
    if (read(go_fd, &c, 1) < 0) _exit(1); /* returns 0 when the parent closes the pipe: go */
    double *s = samples + (size_t)k * (size_t)iterations * 3;
    for (int i = 0; i < iterations; i++) {
        double a = now_us();
        if (peerreg_register(r, json, NULL, &err)) die("register", err);
        double b = now_us();
        if (peerreg_heartbeat(r, id, &err)) die("heartbeat", err);
        double c2 = now_us();
        if (peerreg_unregister(r, id, &err)) die("unregister", err);
        double d = now_us();
        s[i * 3] = b - a;
        s[i * 3 + 1] = c2 - b;
        s[i * 3 + 2] = d - c2;
    }
    peerreg_close(r);
    _exit(0);
}

static void child_floor(int k, const char *dir, size_t bytes, int go_fd, int ready_fd) {
    char lock[4096], tmp[4096], file[4096];
    snprintf(lock, sizeof lock, "%s/floor.lock", dir);
    snprintf(tmp, sizeof tmp, "%s/floor.tmp.%d", dir, k);
    snprintf(file, sizeof file, "%s/floor.json", dir);
    char *buf = malloc(bytes);
    memset(buf, ' ', bytes);
    int lk = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lk < 0 || d < 0) _exit(1);
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1) _exit(1);
    if (read(go_fd, &c, 1) < 0) _exit(1);
    double *s = samples + (size_t)k * (size_t)iterations * 3;
    for (int i = 0; i < iterations * 3; i++) {
        double a = now_us();
        flock(lk, LOCK_EX);
        int f = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (f < 0 || write(f, buf, bytes) != (ssize_t)bytes) _exit(1);
        fsync(f);
        close(f);
        rename(tmp, file);
        fsync(d);
        flock(lk, LOCK_UN);
        s[i] = now_us() - a;
    }
    _exit(0);
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: contend <dir> <procs> <iterations> <base_entries|file_bytes> lib|floor\n");
        return 2;
    }
    const char *dir = argv[1];
    int procs = atoi(argv[2]);
    iterations = atoi(argv[3]);
    long long arg = atoll(argv[4]);
    int lib = strcmp(argv[5], "lib") == 0;
    char path[4096], json[1024], id[32];
    snprintf(path, sizeof path, "%s/servers.json", dir);
    long long mean_bytes = arg;
    if (lib) {
        /* Fill the registry, and find the mean file size of the run: base entries plus half
         * of the writers' (register, heartbeat and unregister each write with the entry in or
         * out of the file, and the others' entries come and go). */
        peerreg_registry *r = NULL;
        peerreg_error *err = NULL;
        if (peerreg_open(&r, path, &err)) die("open", err);
        for (long long i = 0; i < arg; i++) {
            snprintf(id, sizeof id, "other-%lld", i);
            bench_entry_json(json, sizeof json, id, 10000 + (int)i, "none", NULL);
            if (peerreg_register(r, json, NULL, &err)) die("register", err);
        }
        long long base = file_size(path);
        for (int k = 0; k < procs; k++) {
            snprintf(id, sizeof id, "writer-%d", k);
            bench_entry_json(json, sizeof json, id, 30000 + k, "none", NULL);
            if (peerreg_register(r, json, NULL, &err)) die("register", err);
        }
        long long full = file_size(path);
        for (int k = 0; k < procs; k++) {
            snprintf(id, sizeof id, "writer-%d", k);
            if (peerreg_unregister(r, id, &err)) die("unregister", err);
        }
        mean_bytes = (base + full) / 2;
        peerreg_close(r); /* before fork: each child opens its own handle */
    }
    size_t n = (size_t)procs * (size_t)iterations * 3;
    samples = mmap(NULL, n * sizeof(double), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (samples == MAP_FAILED) return 1;
    int go[2], ready[2];
    if (pipe(go) || pipe(ready)) return 1;
    pid_t *pids = calloc((size_t)procs, sizeof(pid_t));
    for (int k = 0; k < procs; k++) {
        pids[k] = fork();
        if (pids[k] < 0) return 1;
        if (pids[k] == 0) {
            close(go[1]);
            close(ready[0]);
            if (lib) child_lib(k, path, go[0], ready[1]);
            else child_floor(k, dir, (size_t)arg, go[0], ready[1]);
        }
    }
    close(go[0]);
    close(ready[1]);
    for (int k = 0; k < procs; k++) {
        char c;
        if (read(ready[0], &c, 1) != 1) { fprintf(stderr, "contend: a writer failed to start\n"); return 1; }
    }
    double start = now_us();
    close(go[1]);
    int failed = 0;
    for (int k = 0; k < procs; k++) {
        int status;
        waitpid(pids[k], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
    }
    double wall = (now_us() - start) / 1e6;
    if (failed) { fprintf(stderr, "contend: a writer failed\n"); return 1; }
    double *all = malloc(n * sizeof(double)), *op[3];
    size_t per = (size_t)procs * (size_t)iterations;
    for (int j = 0; j < 3; j++) op[j] = malloc(per * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        all[i] = samples[i];
        op[i % 3][i / 3] = samples[i];
    }
    const char *dump = getenv("CONTEND_SAMPLES"); /* every latency, one per line, in µs */
    if (dump) {
        FILE *f = fopen(dump, "w");
        if (!f) return 1;
        for (size_t i = 0; i < n; i++) fprintf(f, "%.1f\n", samples[i]);
        fclose(f);
    }
    printf("%zu %.3f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %lld\n", n, wall, (double)n / wall, quantile(all, n, 0.5),
           quantile(all, n, 0.99), quantile(op[0], per, 0.5), quantile(op[0], per, 0.99), quantile(op[1], per, 0.5),
           quantile(op[1], per, 0.99), quantile(op[2], per, 0.5), quantile(op[2], per, 0.99), mean_bytes);
    return 0;
}
