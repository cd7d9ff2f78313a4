/* Loads libpeerregistry with dlopen in a process started with an empty environment (no
 * LD_LIBRARY_PATH, no Swift toolchain on any path), makes real calls through it, and checks that
 * no Swift runtime library was mapped: the library is self-contained.
 * Usage: test_dlopen <path-to-libpeerregistry.so.0> <scratch-dir> */
#define _GNU_SOURCE
#include "peer_registry.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
#define CHECK(c, ...) do { if (c) passed++; else { failed++; fprintf(stderr, "FAIL %s: ", #c); fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)
    if (argc != 3) return 2;
    const char *ld = getenv("LD_LIBRARY_PATH");
    CHECK(ld == NULL || *ld == 0, "LD_LIBRARY_PATH is set: %s", ld);
    double t0 = now_us();
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL, "dlopen: %s", dlerror());
    if (!h) { printf("dlopen: %d passed, %d failed\n", passed, failed); return 1; }
    int (*version_number)(void) = (int (*)(void))dlsym(h, "peerreg_version_number");
    int (*open_)(peerreg_registry **, const char *, peerreg_error **) = (int (*)(peerreg_registry **, const char *, peerreg_error **))dlsym(h, "peerreg_open");
    int (*reg)(peerreg_registry *, const char *, char **, peerreg_error **) = (int (*)(peerreg_registry *, const char *, char **, peerreg_error **))dlsym(h, "peerreg_register");
    int (*get)(peerreg_registry *, const char *, char **, peerreg_error **) = (int (*)(peerreg_registry *, const char *, char **, peerreg_error **))dlsym(h, "peerreg_get");
    void (*close_)(peerreg_registry *) = (void (*)(peerreg_registry *))dlsym(h, "peerreg_close");
    void (*free_)(void *) = (void (*)(void *))dlsym(h, "peerreg_free");
    CHECK(version_number && open_ && reg && get && close_ && free_, "dlsym");
    CHECK(version_number() == PEERREG_VERSION_NUMBER, "version %d", version_number());
    double t1 = now_us();
    char path[1024];
    snprintf(path, sizeof path, "%s/servers.json", argv[2]);
    peerreg_registry *r = NULL;
    CHECK(open_(&r, path, NULL) == PEERREG_OK, "open");
    CHECK(reg(r, "{\"id\":\"dl\",\"url\":\"http://127.0.0.1:1/\"}", NULL, NULL) == PEERREG_OK, "register");
    char *out = NULL;
    double t2 = now_us();
    int rc = get(r, "dl", &out, NULL);
    double t3 = now_us();
    CHECK(rc == PEERREG_OK && strstr(out, "\"dl\""), "get");
    free_(out);
    enum { N = 20000 };
    double t4 = now_us();
    for (int i = 0; i < N; i++) { get(r, "dl", &out, NULL); free_(out); }
    double t5 = now_us();
    for (int i = 0; i < N; i++) version_number();
    double t6 = now_us();
    close_(r);

    FILE *maps = fopen("/proc/self/maps", "r");
    char line[1024];
    int swift = 0;
    while (maps && fgets(line, sizeof line, maps)) if (strstr(line, "libswift") || strstr(line, "libFoundation") || strstr(line, "libdispatch")) swift++;
    if (maps) fclose(maps);
    CHECK(swift == 0, "%d Swift runtime mappings", swift);
    printf("dlopen + first call: %.0f us; first get: %.0f us; get: %.2f us/call; version_number: %.3f us/call\n",
           t1 - t0, t3 - t2, (t5 - t4) / N, (t6 - t5) / N);
    printf("dlopen: %d passed, %d failed\n", passed, failed);
    dlclose(h);
    return failed ? 1 : 0;
}
