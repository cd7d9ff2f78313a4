/* Durable register, heartbeat and unregister through the C ABI, with N other entries in the
 * registry, side by side with the raw floor.
 * Usage: registry_bench <dir> <entries> <iterations> <none|lease> [<rounds>]
 *   none:  the N other entries are static (liveness "none")
 *   lease: the N other entries are held by another live process (a forked holder), so every
 *          write checks N foreign leases — the realistic worst case.
 * The registry is filled once; then, per round, `iterations` times: register (a lease entry),
 * heartbeat (lastSeen = now: always a durable write), unregister — each followed at once by one
 * floor write (floor.h: flock + write + fsync + rename + fsync dir of a file of the same size, in
 * <dir>/floor), so library and floor see the same disk, moment by moment.
 * Prints one line per round:
 *   register_p50 register_p99 unregister_p50 unregister_p99 file_bytes get_us resolve_us list_us
 *   heartbeat_p50 heartbeat_p99 cpu_us floor_p50 floor_p99 floor_mean floor_cpu_us
 * write latencies (microseconds), the file size with the benchmark entry in it, the mean cost of
 * get / resolve / list against the unchanged file, and the CPU time (user + system, whole
 * process) per write of the library and of the floor. */
#define _GNU_SOURCE
#include "bench_common.h"
#include "floor.h"
#include "peer_registry.h"
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void fail(peerreg_error *err) {
    fprintf(stderr, "registry_bench: %s\n", peerreg_error_message(err));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) return 2;
    int entries = atoi(argv[2]), iterations = atoi(argv[3]);
    int lease = strcmp(argv[4], "lease") == 0;
    int rounds = argc == 6 ? atoi(argv[5]) : 1;
    char path[4096], json[1024], id[64];
    snprintf(path, sizeof path, "%s/servers.json", argv[1]);
    int ready[2], stop[2];
    if (pipe(ready) || pipe(stop)) return 1;
    pid_t holder = -1;
    if (lease) {
        holder = fork();
        if (holder == 0) {
            peerreg_registry *h = NULL;
            if (peerreg_open(&h, path, NULL)) _exit(1);
            for (int i = 0; i < entries; i++) {
                snprintf(id, sizeof id, "other-%d", i);
                bench_entry_json(json, sizeof json, id, 10000 + i, "lease", NULL);
                if (peerreg_register(h, json, NULL, NULL)) _exit(2);
            }
            if (write(ready[1], "r", 1) != 1) _exit(3);
            char c;
            if (read(stop[0], &c, 1) < 0) _exit(4);
            peerreg_close(h);
            _exit(0);
        }
        char c;
        if (read(ready[0], &c, 1) != 1) return 1;
    }
    peerreg_registry *r = NULL;
    peerreg_error *err = NULL;
    if (peerreg_open(&r, path, &err)) fail(err);
    if (!lease)
        for (int i = 0; i < entries; i++) {
            snprintf(id, sizeof id, "other-%d", i);
            bench_entry_json(json, sizeof json, id, 10000 + i, "none", NULL);
            if (peerreg_register(r, json, NULL, &err)) fail(err);
        }
    double *reg = malloc(sizeof(double) * (size_t)iterations), *unreg = malloc(sizeof(double) * (size_t)iterations);
    double *beat = malloc(sizeof(double) * (size_t)iterations), *fl = malloc(sizeof(double) * 3 * (size_t)iterations);
    bench_entry_json(json, sizeof json, "bench", 9999, "lease", NULL);
    /* the file size while the benchmark entry is registered: what the floor writes */
    if (peerreg_register(r, json, NULL, &err)) fail(err);
    struct stat st;
    stat(path, &st);
    if (peerreg_unregister(r, "bench", &err)) fail(err);
    char floor_dir[4096];
    snprintf(floor_dir, sizeof floor_dir, "%s/floor", argv[1]);
    mkdir(floor_dir, 0700);
    struct floor_writer fw;
    if (floor_open(&fw, floor_dir, (size_t)st.st_size)) { perror("registry_bench: floor"); return 1; }
    for (int round = 0; round < rounds; round++) {
        double lib_cpu = 0, floor_cpu = 0, fsum = 0;
        for (int i = 0; i < iterations; i++) {
            for (int op = 0; op < 3; op++) {
                double c0 = cpu_time_us(), a = now_us();
                int rc = op == 0 ? peerreg_register(r, json, NULL, &err)
                       : op == 1 ? peerreg_heartbeat(r, "bench", &err)
                                 : peerreg_unregister(r, "bench", &err);
                double b = now_us(), c1 = cpu_time_us();
                if (rc) fail(err);
                if (floor_write(&fw)) { perror("registry_bench: floor"); return 1; }
                double c = now_us(), c2 = cpu_time_us();
                (op == 0 ? reg : op == 1 ? beat : unreg)[i] = b - a;
                fl[3 * i + op] = c - b;
                fsum += c - b;
                lib_cpu += c1 - c0;
                floor_cpu += c2 - c1;
            }
        }
        if (peerreg_register(r, json, NULL, &err)) fail(err);
        enum { READS = 2000 };
        char *out = NULL;
        double a = now_us();
        for (int i = 0; i < READS; i++) { peerreg_get(r, "bench", &out, NULL); peerreg_free(out); }
        double b = now_us();
        for (int i = 0; i < READS; i++) { peerreg_resolve(r, PEERREG_TOOL, "search-bench", &out, NULL); peerreg_free(out); }
        double c = now_us();
        int lists = entries >= 1000 ? 50 : 500;
        for (int i = 0; i < lists; i++) { peerreg_list(r, NULL, &out, NULL); peerreg_free(out); }
        double d = now_us();
        if (peerreg_unregister(r, "bench", &err)) fail(err);
        size_t n = (size_t)iterations;
        printf("%.1f %.1f %.1f %.1f %lld %.2f %.2f %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f\n", quantile(reg, n, 0.5), quantile(reg, n, 0.99),
               quantile(unreg, n, 0.5), quantile(unreg, n, 0.99), (long long)st.st_size, (b - a) / READS, (c - b) / READS,
               (d - c) / lists, quantile(beat, n, 0.5), quantile(beat, n, 0.99), lib_cpu / (3.0 * iterations), quantile(fl, 3 * n, 0.5),
               quantile(fl, 3 * n, 0.99), fsum / (3.0 * iterations), floor_cpu / (3.0 * iterations));
        fflush(stdout);
    }
    peerreg_close(r);
    if (lease) {
        if (write(stop[1], "s", 1) != 1) return 1;
        waitpid(holder, NULL, 0);
    }
    return 0;
}
