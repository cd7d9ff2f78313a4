/* The C baseline for the bindings' per-call overhead and load time. The library is dlopen()ed,
 * as every binding does.
 *
 * Usage: c_overhead load <lib.so>
 *          prints the nanoseconds of dlopen(RTLD_NOW) + dlsym + the first peerreg_version_number()
 *          (run it in fresh processes: a process loads the library once)
 *        c_overhead calls <lib.so> <dir>
 *          prints "version_ns get_ns": per call, best of 5 runs, of peerreg_version_number() and of
 *          peerreg_get() (+ peerreg_free) of one of 100 entries in an unchanged file */
#define _GNU_SOURCE
#include "bench_common.h"
#include "peer_registry.h"
#include <dlfcn.h>
#include <string.h>

typedef int (*version_fn)(void);
typedef int (*open_fn)(peerreg_registry **, const char *, peerreg_error **);
typedef int (*register_fn)(peerreg_registry *, const char *, char **, peerreg_error **);
typedef int (*get_fn)(peerreg_registry *, const char *, char **, peerreg_error **);
typedef void (*free_fn)(void *);
typedef void (*close_fn)(peerreg_registry *);

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long long t0 = now_ns();
    void *h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "c_overhead: %s\n", dlerror()); return 1; }
    version_fn version = (version_fn)dlsym(h, "peerreg_version_number");
    volatile int sink = version();
    long long t1 = now_ns();
    if (strcmp(argv[1], "load") == 0) {
        printf("%lld\n", t1 - t0);
        return sink == 0;
    }
    if (argc != 4) return 2;
    open_fn popen_ = (open_fn)dlsym(h, "peerreg_open");
    register_fn preg = (register_fn)dlsym(h, "peerreg_register");
    get_fn pget = (get_fn)dlsym(h, "peerreg_get");
    free_fn pfree = (free_fn)dlsym(h, "peerreg_free");
    close_fn pclose_ = (close_fn)dlsym(h, "peerreg_close");
    char path[4096], json[1024], id[32];
    snprintf(path, sizeof path, "%s/servers.json", argv[3]);
    peerreg_registry *r = NULL;
    if (popen_(&r, path, NULL)) return 1;
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "svc-%d", i);
        bench_entry_json(json, sizeof json, id, 2000 + i, "none", NULL);
        if (preg(r, json, NULL, NULL)) return 1;
    }
    enum { N = 200000, G = 50000 };
    double best_v = 1e18, best_g = 1e18;
    for (int round = 0; round < 5; round++) {
        long long a = now_ns();
        for (int i = 0; i < N; i++) sink += version();
        long long b = now_ns();
        for (int i = 0; i < G; i++) {
            char *out = NULL;
            if (pget(r, "svc-42", &out, NULL)) return 1;
            pfree(out);
        }
        long long c = now_ns();
        if ((double)(b - a) / N < best_v) best_v = (double)(b - a) / N;
        if ((double)(c - b) / G < best_g) best_g = (double)(c - b) / G;
    }
    printf("%.1f %.1f\n", best_v, best_g);
    pclose_(r);
    return 0;
}
