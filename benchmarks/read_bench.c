/* Reads (get, resolve, list) against an unchanged file, and the first read just after another
 * process changed it (which re-parses the file and rebuilds the resolution index).
 *
 * Usage: read_bench <dir> <entries> <iterations> [seeded]
 *   seeded: <dir>/servers.json already holds the N entries (benchmarks/seed_registry.c)
 *
 * The registry holds N static entries and one more that a forked writer process re-registers
 * (metadata.seq = i) whenever the reader asks: a durable write by another process. For each
 * of get, resolve (a bare tool name, declared by entry N/2) and list, per iteration: the writer
 * changes the file; the reader times its first call (after the change), then a second call
 * (unchanged file). In the same loop, the floors: fstatat() of the file (what a read of an
 * unchanged file must cost at least) and open + read + close of the whole file just after the
 * change (what noticing a change must cost at least, before any parsing).
 *
 * Prints one line, microseconds, p50 then p99 of each:
 *   get_same get_changed resolve_same resolve_changed list_same list_changed stat read_file
 *   (16 numbers) followed by file_bytes. */
#define _GNU_SOURCE
#include "bench_common.h"
#include "peer_registry.h"
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what, peerreg_error *err) {
    fprintf(stderr, "read_bench: %s: %s\n", what, err ? peerreg_error_message(err) : "failed");
    _exit(1);
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) { fprintf(stderr, "usage: read_bench <dir> <entries> <iterations> [seeded]\n"); return 2; }
    int seeded = argc == 5 && strcmp(argv[4], "seeded") == 0;
    int entries = atoi(argv[2]), iterations = atoi(argv[3]);
    char path[4096], json[1024], id[64], meta[64], tool[64];
    snprintf(path, sizeof path, "%s/servers.json", argv[1]);
    peerreg_registry *r = NULL;
    peerreg_error *err = NULL;
    if (peerreg_open(&r, path, &err)) die("open", err);
    for (int i = 0; i < entries && !seeded; i++) {
        snprintf(id, sizeof id, "other-%d", i);
        bench_entry_json(json, sizeof json, id, 10000 + i, "none", NULL);
        if (peerreg_register(r, json, NULL, &err)) die("register", err);
    }
    snprintf(tool, sizeof tool, "search-other-%d", entries / 2);
    snprintf(id, sizeof id, "other-%d", entries / 2);

    int ask[2], done[2];
    if (pipe(ask) || pipe(done)) return 1;
    pid_t writer = fork();
    if (writer == 0) {
        close(ask[1]);
        close(done[0]);
        peerreg_registry *w = NULL;
        if (peerreg_open(&w, path, &err)) die("writer open", err);
        char c;
        for (int seq = 0; read(ask[0], &c, 1) == 1; seq++) {
            snprintf(meta, sizeof meta, ",\"seq\":%d", seq);
            bench_entry_json(json, sizeof json, "writer", 9998, "none", meta);
            if (peerreg_register(w, json, NULL, &err)) die("writer register", err);
            if (write(done[1], "d", 1) != 1) _exit(1);
        }
        peerreg_close(w);
        _exit(0);
    }
    close(ask[0]);
    close(done[1]);

    enum { GET_SAME, GET_CHANGED, RES_SAME, RES_CHANGED, LIST_SAME, LIST_CHANGED, STAT, READ_FILE, KINDS };
    double *t[KINDS];
    for (int k = 0; k < KINDS; k++) t[k] = malloc(sizeof(double) * (size_t)iterations);
    struct stat st;
    char *buf = malloc(16 << 20);
    char *out = NULL;
    for (int i = 0; i < iterations; i++) {
        for (int op = 0; op < 3; op++) {
            char c;
            if (write(ask[1], "w", 1) != 1 || read(done[0], &c, 1) != 1) { fprintf(stderr, "read_bench: writer died\n"); return 1; }
            if (op == 0) {
                /* the floor of noticing the change: read the whole new file (page cache) */
                double a = now_us();
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t got = 0, m;
                while ((m = read(fd, buf + got, (16 << 20) - (size_t)got)) > 0) got += m;
                close(fd);
                t[READ_FILE][i] = now_us() - a;
            }
            for (int pass = 0; pass < 2; pass++) {
                double a = now_us();
                int rc;
                if (op == 0) rc = peerreg_get(r, id, &out, &err);
                else if (op == 1) rc = peerreg_resolve(r, PEERREG_TOOL, tool, &out, &err);
                else rc = peerreg_list(r, NULL, &out, &err);
                double b = now_us();
                if (rc) die("read", err);
                peerreg_free(out);
                t[op * 2 + (pass == 0)][i] = b - a; /* pass 0: the first call after the change */
            }
        }
        double a = now_us();
        fstatat(AT_FDCWD, path, &st, 0);
        t[STAT][i] = now_us() - a;
    }
    close(ask[1]);
    waitpid(writer, NULL, 0);
    stat(path, &st);
    for (int k = 0; k < KINDS; k++) {
        double p50 = quantile(t[k], (size_t)iterations, 0.5), p99 = quantile(t[k], (size_t)iterations, 0.99);
        printf("%.2f %.2f ", p50, p99);
    }
    printf("%lld\n", (long long)st.st_size);
    peerreg_close(r);
    return 0;
}
