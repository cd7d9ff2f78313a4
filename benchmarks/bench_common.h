/* Shared helpers of the C benchmarks: a monotonic clock, percentiles, the benchmark entry. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* CLOCK_MONOTONIC is one clock for every process on the machine: Python's time.monotonic_ns(),
 * Node's process.hrtime.bigint() and clock_gettime(CLOCK_MONOTONIC) in Go (cgo) read it too,
 * so timestamps taken in different processes and languages can be subtracted. */
static inline long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
static inline double now_us(void) { return (double)now_ns() / 1e3; }
/* CPU time (user + system) of the whole process so far, in microseconds. */
static inline double cpu_time_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
/* The p-quantile (0..1) of n samples; sorts them in place. Nearest rank. */
static inline double quantile(double *v, size_t n, double p) {
    if (n == 0) return 0;
    qsort(v, n, sizeof(double), cmp_double);
    size_t i = (size_t)(p * (double)n);
    if (i >= n) i = n - 1;
    return v[i];
}

/* The entry every benchmark registers: the shape a real server publishes (capabilities,
 * metadata), about 430 bytes as the library stores it. */
static inline void bench_entry_json(char *out, size_t n, const char *id, int port, const char *liveness,
                                    const char *extra_metadata) {
    snprintf(out, n,
             "{\"id\":\"%s\",\"name\":\"Benchmark server %s\",\"url\":\"http://127.0.0.1:%d/mcp\",\"liveness\":\"%s\","
             "\"capabilities\":{\"tools\":[\"search-%s\",\"fetch-%s\",\"summarize\"],\"resources\":[\"resource://%s/\"],"
             "\"prompts\":[\"plan-%s\"]},\"metadata\":{\"team\":\"bench\",\"region\":\"local\"%s}}",
             id, id, port, liveness, id, id, id, id, extra_metadata ? extra_metadata : "");
}

#endif
