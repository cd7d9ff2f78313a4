/* list on a settled file: the whole listing of an unchanged registry, against a memcpy of as
 * many bytes (issue 15's bar: at most 3x).
 *
 * Usage: list_bench <registry path> <iterations>
 *
 * Opens the registry (already seeded), lists once, then waits 200 ms so the file is past the
 * window in which an unchanged stamp is not yet proof of unchanged contents (after that a read
 * costs a stat; docs/FORMAT.md, "Reading"). Then, per iteration: one peerreg_list with no filter
 * (the JSON of every live entry, copied out to the caller) and one memcpy of the same number of
 * bytes. Prints: list_p50 list_p99 memcpy_p50 bytes (µs). */
#define _GNU_SOURCE
#include "bench_common.h"
#include "peer_registry.h"
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: list_bench <registry path> <iterations>\n"); return 2; }
    peerreg_registry *r = NULL;
    peerreg_error *err = NULL;
    char *out = NULL;
    if (peerreg_open(&r, argv[1], &err) || peerreg_list(r, NULL, &out, &err)) {
        fprintf(stderr, "list_bench: %s\n", err ? peerreg_error_message(err) : "failed");
        return 1;
    }
    size_t len = strlen(out);
    peerreg_free(out);
    usleep(200000);
    int n = atoi(argv[2]);
    double *lists = malloc(n * sizeof *lists), *copies = malloc(n * sizeof *copies);
    char *src = malloc(len + 1), *dst = malloc(len + 1);
    memset(src, 'x', len);
    for (int i = 0; i < n; i++) {
        double a = now_us();
        if (peerreg_list(r, NULL, &out, &err)) { fprintf(stderr, "list_bench: %s\n", peerreg_error_message(err)); return 1; }
        double b = now_us();
        peerreg_free(out);
        lists[i] = b - a;
        a = now_us();
        memcpy(dst, src, len);
        dst[len] = src[i % len];
        b = now_us();
        copies[i] = b - a;
    }
    double l50 = quantile(lists, (size_t)n, 0.5), l99 = quantile(lists, (size_t)n, 0.99), c50 = quantile(copies, (size_t)n, 0.5);
    printf("%.2f %.2f %.2f %zu\n", l50, l99, c50, len);
    peerreg_close(r);
    return 0;
}
