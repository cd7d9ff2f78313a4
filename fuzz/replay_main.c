/* Replays files through the fuzz targets without libFuzzer or sanitizers (build/fuzz/replay,
 * made by `fuzz/build.sh replay`; `make test-fuzz-corpus` runs it on fuzz/corpus/):
 *
 *   replay [-v] <parser|entry|cabi> <file|dir>...
 *
 * Each argument is a file, or a directory whose regular files are all replayed (sorted). Each
 * input runs in a child process, so a broken invariant (which aborts) or a trap is reported
 * with the file's name and the replay goes on. Prints "<target>: N inputs replayed, N failed"
 * and exits 1 if any failed. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int peerreg_fuzz_parser(const uint8_t *data, size_t size);
int peerreg_fuzz_entry(const uint8_t *data, size_t size);
int peerreg_fuzz_cabi(const uint8_t *data, size_t size);

static int (*target)(const uint8_t *, size_t);
static int verbose;
static long replayed, failures;

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 1; }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) { cap *= 2; buf = realloc(buf, cap); }
    }
    fclose(f);
    if (!buf) { fprintf(stderr, "out of memory reading %s\n", path); return 1; }
    if (verbose) fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        /* A copy of exactly len bytes, as libFuzzer passes it. */
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        target(exact, len);
        exit(0); /* runs the cabi target's atexit cleanup */
    }
    free(buf);
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child) { perror("fork/waitpid"); return 1; }
    replayed++;
    /* a child that died before its cleanup leaves its cabi scratch registry behind */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf /dev/shm/peerreg-fuzz-%d /tmp/peerreg-fuzz-%d", (int)child, (int)child);
    if (system(cmd) != 0) fprintf(stderr, "replay: could not remove the scratch registry of %d\n", (int)child);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        failures++;
        if (WIFSIGNALED(status)) fprintf(stderr, "FAILED %s: killed by signal %d\n", path, WTERMSIG(status));
        else fprintf(stderr, "FAILED %s: exit %d\n", path, WEXITSTATUS(status));
    }
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static int replay(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) { perror(path); return 1; }
    if (!S_ISDIR(st.st_mode)) return replay_file(path);
    struct dirent **names;
    int n = scandir(path, &names, NULL, by_name);
    if (n < 0) { perror(path); return 1; }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char child[4096];
            snprintf(child, sizeof child, "%s/%s", path, names[i]->d_name);
            struct stat cst;
            if (stat(child, &cst) == 0 && S_ISREG(cst.st_mode)) bad |= replay_file(child);
        }
        free(names[i]);
    }
    free(names);
    return bad;
}

int main(int argc, char **argv) {
    int bad = 0, first = 1;
    if (argc > 1 && strcmp(argv[1], "-v") == 0) { verbose = 1; first = 2; }
    if (first + 1 >= argc) { fprintf(stderr, "usage: %s [-v] <parser|entry|cabi> <file|dir>...\n", argv[0]); return 2; }
    const char *name = argv[first++];
    if (strcmp(name, "parser") == 0) target = peerreg_fuzz_parser;
    else if (strcmp(name, "entry") == 0) target = peerreg_fuzz_entry;
    else if (strcmp(name, "cabi") == 0) target = peerreg_fuzz_cabi;
    else { fprintf(stderr, "replay: unknown target %s\n", name); return 2; }
    for (int i = first; i < argc; i++) bad |= replay(argv[i]);
    printf("%s: %ld inputs replayed, %ld failed%s\n", name, replayed, failures, bad ? " (some unreadable)" : "");
    return bad || failures ? 1 : 0;
}
