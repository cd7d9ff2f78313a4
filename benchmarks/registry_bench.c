/* Durable register, heartbeat and unregister through the C ABI, with N other entries in the registry.
 * Usage: registry_bench <dir> <entries> <iterations> <none|lease>
 *   none:  the N other entries are static (liveness "none")
 *   lease: the N other entries are held by another live process (a forked holder), so every
 *          write checks N foreign leases — the realistic worst case.
 * Prints "register_p50 register_p99 unregister_p50 unregister_p99 file_bytes get_us resolve_us list_us
 * heartbeat_p50 heartbeat_p99": write latencies (microseconds), the file size with the benchmark
 * entry in it, and the mean cost of get / resolve / list against the unchanged file. Each
 * iteration is register, heartbeat (lastSeen = now: always a durable write), unregister. */
#define _GNU_SOURCE
#include "peer_registry.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static void entry_json(char *out, size_t n, const char *id, int port, const char *liveness) {
    snprintf(out, n,
             "{\"id\":\"%s\",\"name\":\"Benchmark server %s\",\"url\":\"http://127.0.0.1:%d/mcp\",\"liveness\":\"%s\","
             "\"capabilities\":{\"tools\":[\"search-%s\",\"fetch-%s\",\"summarize\"],\"resources\":[\"resource://%s/\"],"
             "\"prompts\":[\"plan-%s\"]},\"metadata\":{\"team\":\"bench\",\"region\":\"local\"}}",
             id, id, port, liveness, id, id, id, id);
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    int entries = atoi(argv[2]), iterations = atoi(argv[3]);
    int lease = strcmp(argv[4], "lease") == 0;
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
                entry_json(json, sizeof json, id, 10000 + i, "lease");
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
    if (peerreg_open(&r, path, &err)) { fprintf(stderr, "%s\n", peerreg_error_message(err)); return 1; }
    if (!lease)
        for (int i = 0; i < entries; i++) {
            snprintf(id, sizeof id, "other-%d", i);
            entry_json(json, sizeof json, id, 10000 + i, "none");
            if (peerreg_register(r, json, NULL, NULL)) return 1;
        }
    double *reg = malloc(sizeof(double) * (size_t)iterations), *unreg = malloc(sizeof(double) * (size_t)iterations);
    double *beat = malloc(sizeof(double) * (size_t)iterations);
    entry_json(json, sizeof json, "bench", 9999, "lease");
    for (int i = 0; i < iterations; i++) {
        double a = now_us();
        if (peerreg_register(r, json, NULL, &err)) { fprintf(stderr, "%s\n", peerreg_error_message(err)); return 1; }
        double b = now_us();
        if (peerreg_heartbeat(r, "bench", &err)) { fprintf(stderr, "%s\n", peerreg_error_message(err)); return 1; }
        double h = now_us();
        if (peerreg_unregister(r, "bench", &err)) { fprintf(stderr, "%s\n", peerreg_error_message(err)); return 1; }
        double c = now_us();
        reg[i] = b - a;
        beat[i] = h - b;
        unreg[i] = c - h;
    }
    /* the file size while the benchmark entry is registered: what the floor writes */
    peerreg_register(r, json, NULL, NULL);
    struct stat st;
    stat(path, &st);
    qsort(reg, (size_t)iterations, sizeof(double), cmp);
    qsort(unreg, (size_t)iterations, sizeof(double), cmp);
    qsort(beat, (size_t)iterations, sizeof(double), cmp);
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
    printf("%.1f %.1f %.1f %.1f %lld %.2f %.2f %.1f %.1f %.1f\n", reg[iterations / 2], reg[(int)(iterations * 0.99)], unreg[iterations / 2],
           unreg[(int)(iterations * 0.99)], (long long)st.st_size, (b - a) / READS, (c - b) / READS, (d - c) / lists,
           beat[iterations / 2], beat[(int)(iterations * 0.99)]);
    peerreg_close(r);
    if (lease) {
        if (write(stop[1], "s", 1) != 1) return 1;
        waitpid(holder, NULL, 0);
    }
    return 0;
}
