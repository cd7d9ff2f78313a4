/* The torture tests' writer, owner and hostile-input process, driven by tests/torture/run.py.
 * Everything goes through the C ABI (include/peer_registry.h), as any C program would.
 *
 *   helper ops <path> <opfile> [--hold]
 *       Runs the operations of <opfile> in order, one per line, fields separated by TAB:
 *         register <entry-json> | unregister <id> | health <id> <status> [<message>] |
 *         heartbeat <id> | prune
 *       After each prints "ack <index> <rc> <pid>" (flushed). With PEERREG_CRASH_AT set the
 *       library _exit(86)s at that step of a write. --hold: sleep until killed at the end
 *       (so leases taken stay held).
 *   helper hold <path> <entry-json>
 *       Registers (lease by default), prints "ready <rc>", then sleeps until killed.
 *   helper ttl <path> <entry-json> <interval-ms>
 *       Registers, prints "registered <rc>"; then every interval heartbeats and prints
 *       "heartbeat <rc>"; when a heartbeat says PEERREG_ENOTFOUND it registers again and prints
 *       "reregistered <rc>". Runs until killed.
 *   helper list <path>
 *       Prints peerreg_list's JSON (or "error <rc> <message>").
 *   helper hostile <path> <casefile> <passes>
 *       Feeds every case of <casefile> through its entry point <passes> times (format below),
 *       checks the code, the error object, out pointers and that nothing was written; prints
 *       "rss <label> <kB>" at checkpoints (start, warm = after 200 cases, passN, end, and
 *       peak = VmHWM), "fail <index> <message>" per broken case, and
 *       "hostile <passed> <failed>" at the end. Cases are streamed from the file, one at a time,
 *       so the RSS is the library's (plus one case).
 *
 * Case file: records of  u8 kind | i32 status-or-kind | u32 allowed-code-mask | u32 length | bytes
 * (little endian). The allowed mask has bit (-code) set for every acceptable PEERREG_* code
 * (bit 0: PEERREG_OK). Kinds:
 *   1 register(entry)   2 list(filter)   3 get(id)   4 unregister(id)   5 resolve(kind=i32, name)
 *   6 set_health(id "baseline", status=i32, message)   7 heartbeat(id)
 *   8 file: the bytes replace servers.json (written aside and renamed in, as a foreign tool
 *     would), then list, get, resolve and register must each fail with an allowed code, and
 *     the file must be byte-for-byte unchanged, with no temp file left
 *   9 open(path)   10 register(NULL)  11 set_health(id, status=i32, message NULL)
 * A length of 0xFFFFFFFF means a NULL argument.
 */
#define _GNU_SOURCE
#include "peer_registry.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static peerreg_registry *open_or_die(const char *path) {
    peerreg_registry *r = NULL;
    peerreg_error *e = NULL;
    int rc = peerreg_open(&r, path, &e);
    if (rc != PEERREG_OK) {
        printf("open-failed %d %s\n", rc, peerreg_error_message(e));
        fflush(stdout);
        exit(3);
    }
    return r;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ---- ops ---------------------------------------------------------------------------------- */

static int run_op(peerreg_registry *r, char *line) {
    char *fields[4] = {0};
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, "\t", &save); tok && n < 4; tok = strtok_r(NULL, "\t", &save)) fields[n++] = tok;
    if (n == 0) return PEERREG_EINVAL;
    peerreg_error *e = NULL;
    int rc;
    if (strcmp(fields[0], "register") == 0 && n >= 2) rc = peerreg_register(r, fields[1], NULL, &e);
    else if (strcmp(fields[0], "unregister") == 0 && n >= 2) rc = peerreg_unregister(r, fields[1], &e);
    else if (strcmp(fields[0], "health") == 0 && n >= 3) rc = peerreg_set_health(r, fields[1], atoi(fields[2]), n >= 4 ? fields[3] : NULL, &e);
    else if (strcmp(fields[0], "heartbeat") == 0 && n >= 2) rc = peerreg_heartbeat(r, fields[1], &e);
    else if (strcmp(fields[0], "prune") == 0) rc = peerreg_prune(r, NULL, &e);
    else { fprintf(stderr, "helper: bad op line: %s\n", fields[0]); exit(2); }
    if (rc != PEERREG_OK) fprintf(stderr, "helper: %s: %d %s\n", fields[0], rc, peerreg_error_message(e));
    peerreg_error_free(e);
    return rc;
}

static int cmd_ops(const char *path, const char *opfile, int hold) {
    FILE *f = fopen(opfile, "r");
    if (!f) { perror(opfile); return 2; }
    peerreg_registry *r = open_or_die(path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int index = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n') line[--len] = 0;
        if (len == 0) continue;
        int rc = run_op(r, line);
        printf("ack %d %d %d\n", index++, rc, (int)getpid());
        fflush(stdout);
    }
    free(line);
    fclose(f);
    if (hold) for (;;) pause();
    peerreg_close(r);
    return 0;
}

__attribute__((noreturn)) static void cmd_hold(const char *path, const char *entry) {
    peerreg_registry *r = open_or_die(path);
    peerreg_error *e = NULL;
    int rc = peerreg_register(r, entry, NULL, &e);
    printf("ready %d %s\n", rc, rc ? peerreg_error_message(e) : "");
    fflush(stdout);
    peerreg_error_free(e);
    for (;;) pause();
}

__attribute__((noreturn)) static void cmd_ttl(const char *path, const char *entry, long interval) {
    peerreg_registry *r = open_or_die(path);
    peerreg_error *e = NULL;
    int rc = peerreg_register(r, entry, NULL, &e);
    printf("registered %d\n", rc);
    fflush(stdout);
    peerreg_error_free(e);
    /* the id, for heartbeats: the entry's "id" value */
    char id[128] = {0};
    const char *p = strstr(entry, "\"id\"");
    if (p) {
        p += 4;
        while (*p == ' ' || *p == ':') p++;
        if (*p == '"') sscanf(p + 1, "%127[^\"]", id);
    }
    if (!id[0]) { fprintf(stderr, "helper ttl: no \"id\" in the entry\n"); exit(2); }
    for (;;) {
        sleep_ms(interval);
        e = NULL;
        rc = peerreg_heartbeat(r, id, &e);
        peerreg_error_free(e);
        printf("heartbeat %d\n", rc);
        fflush(stdout);
        if (rc == PEERREG_ENOTFOUND) {
            e = NULL;
            rc = peerreg_register(r, entry, NULL, &e);
            peerreg_error_free(e);
            printf("reregistered %d\n", rc);
            fflush(stdout);
        }
    }
}

static int cmd_list(const char *path) {
    peerreg_registry *r = open_or_die(path);
    char *out = NULL;
    peerreg_error *e = NULL;
    int rc = peerreg_list(r, NULL, &out, &e);
    if (rc == PEERREG_OK) printf("%s\n", out);
    else printf("error %d %s\n", rc, peerreg_error_message(e));
    peerreg_free(out);
    peerreg_error_free(e);
    peerreg_close(r);
    return 0;
}

/* ---- hostile input ---------------------------------------------------------------------- */

struct hcase {
    uint8_t kind;
    int32_t param;
    uint32_t allowed;
    uint32_t len; /* 0xFFFFFFFF: NULL */
    char *bytes;  /* NUL-terminated copy (the C string the library sees ends at the first NUL) */
};

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Peak resident set size (VmHWM) in kB. */
static long hwm_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static int read_exact(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f) == n; }

/* Reads the next case; 0 at the end of the file. */
static int next_case(FILE *f, struct hcase *c) {
    if (!read_exact(f, &c->kind, 1)) return 0;
    if (!read_exact(f, &c->param, 4) || !read_exact(f, &c->allowed, 4) || !read_exact(f, &c->len, 4)) { fprintf(stderr, "truncated case file\n"); exit(2); }
    if (c->len == 0xFFFFFFFFu) {
        c->bytes = NULL;
    } else {
        c->bytes = malloc((size_t)c->len + 1);
        if (!c->bytes || !read_exact(f, c->bytes, c->len)) { fprintf(stderr, "truncated case file\n"); exit(2); }
        c->bytes[c->len] = 0;
    }
    return 1;
}

static int file_stamp(const char *path, struct stat *st) { return stat(path, st); }

static int same_stamp(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static long passed, failed;
static char fail_buf[1024];

static void fail(size_t index, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(size_t index, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail_buf, sizeof fail_buf, fmt, ap);
    va_end(ap);
    for (char *p = fail_buf; *p; p++) if (*p == '\n') *p = ' ';
    printf("fail %zu %s\n", index, fail_buf);
    fflush(stdout);
    failed++;
}

/* Checks one result: allowed code, error object consistent, out pointer NULL on failure. */
static int check_result(size_t index, const char *what, int rc, peerreg_error *e, char *out, int has_out, uint32_t allowed) {
    int ok = 1;
    if (rc > 0 || rc < -31 || !(allowed & (1u << (unsigned)(-rc)))) {
        fail(index, "%s: got %d (%s): %s", what, rc, peerreg_errstr(rc), e ? peerreg_error_message(e) : "");
        ok = 0;
    } else if (rc != PEERREG_OK) {
        if (!e) { fail(index, "%s: no error object for %d", what, rc); ok = 0; }
        else if (peerreg_error_code(e) != rc) { fail(index, "%s: error code %d != %d", what, peerreg_error_code(e), rc); ok = 0; }
        else if (strlen(peerreg_error_message(e)) == 0) { fail(index, "%s: empty message", what); ok = 0; }
        if (has_out && out) { fail(index, "%s: out set on failure", what); ok = 0; }
    } else if (e) {
        fail(index, "%s: error object on success", what);
        ok = 0;
    }
    peerreg_error_free(e);
    peerreg_free(out);
    return ok;
}

static char reg_path[4096], tmp_path[4200], aside_path[4200];

static int write_file(const char *path, const char *bytes, size_t len) {
    int fd = open(aside_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, bytes + done, len - done);
        if (w < 0) { close(fd); return -1; }
        done += (size_t)w;
    }
    /* Dated 10 s ago: a file someone left there, not one still being written (a file changed in
     * the last 2 s that does not parse is read again for a while: docs/FORMAT.md, "Torn reads"). */
    struct timespec past[2];
    clock_gettime(CLOCK_REALTIME, &past[0]);
    past[0].tv_sec -= 10;
    past[1] = past[0];
    futimens(fd, past);
    close(fd);
    return rename(aside_path, path);
}

static int read_file(const char *path, char **bytes, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) { cap *= 2; buf = realloc(buf, cap); }
    }
    fclose(f);
    *bytes = buf;
    *len = n;
    return 0;
}

static int run_case(peerreg_registry *r, size_t index, const struct hcase *c, const char *good_file, size_t good_len) {
    peerreg_error *e = NULL;
    char *out = NULL;
    struct stat before, after;
    int have_before = file_stamp(reg_path, &before) == 0;
    int ok = 1, rc;
    switch (c->kind) {
    case 1: rc = peerreg_register(r, c->bytes, &out, &e); ok = check_result(index, "register", rc, e, out, 1, c->allowed); break;
    case 10: rc = peerreg_register(r, NULL, &out, &e); ok = check_result(index, "register(NULL)", rc, e, out, 1, c->allowed); break;
    case 2: rc = peerreg_list(r, c->bytes, &out, &e); ok = check_result(index, "list", rc, e, out, 1, c->allowed); break;
    case 3: rc = peerreg_get(r, c->bytes, &out, &e); ok = check_result(index, "get", rc, e, out, 1, c->allowed); break;
    case 4: rc = peerreg_unregister(r, c->bytes, &e); ok = check_result(index, "unregister", rc, e, NULL, 0, c->allowed); break;
    case 5: rc = peerreg_resolve(r, c->param, c->bytes, &out, &e); ok = check_result(index, "resolve", rc, e, out, 1, c->allowed); break;
    case 6: rc = peerreg_set_health(r, "baseline", c->param, c->bytes, &e); ok = check_result(index, "set_health", rc, e, NULL, 0, c->allowed); break;
    case 11: rc = peerreg_set_health(r, c->bytes, c->param, NULL, &e); ok = check_result(index, "set_health(id)", rc, e, NULL, 0, c->allowed); break;
    case 7: rc = peerreg_heartbeat(r, c->bytes, &e); ok = check_result(index, "heartbeat", rc, e, NULL, 0, c->allowed); break;
    case 9: {
        peerreg_registry *r2 = NULL;
        rc = peerreg_open(&r2, c->bytes, &e);
        ok = check_result(index, "open", rc, e, NULL, 0, c->allowed);
        if (rc == PEERREG_OK) peerreg_close(r2);
        else if (r2) { fail(index, "open: handle set on failure"); ok = 0; }
        break;
    }
    case 8: {
        if (write_file(reg_path, c->bytes, c->len) != 0) { fail(index, "cannot write the hostile file: %s", strerror(errno)); return 0; }
        struct stat planted;
        stat(reg_path, &planted);
        rc = peerreg_list(r, NULL, &out, &e);
        ok &= check_result(index, "list(file)", rc, e, out, 1, c->allowed);
        e = NULL; out = NULL;
        rc = peerreg_get(r, "baseline", &out, &e);
        ok &= check_result(index, "get(file)", rc, e, out, 1, c->allowed);
        e = NULL; out = NULL;
        rc = peerreg_resolve(r, PEERREG_TOOL, "t", &out, &e);
        ok &= check_result(index, "resolve(file)", rc, e, out, 1, c->allowed);
        e = NULL; out = NULL;
        rc = peerreg_register(r, "{\"id\":\"hostile-probe\",\"url\":\"http://127.0.0.1:9/\",\"liveness\":\"none\"}", &out, &e);
        ok &= check_result(index, "register(file)", rc, e, out, 1, c->allowed);
        e = NULL;
        rc = peerreg_heartbeat(r, "baseline", &e);
        ok &= check_result(index, "heartbeat(file)", rc, e, NULL, 0, c->allowed);
        struct stat now;
        if (stat(reg_path, &now) != 0 || !same_stamp(&planted, &now)) { fail(index, "the hostile file was replaced or touched"); ok = 0; }
        else {
            char *back = NULL;
            size_t back_len = 0;
            if (read_file(reg_path, &back, &back_len) != 0 || back_len != c->len || memcmp(back, c->bytes, c->len) != 0) {
                fail(index, "the hostile file's content changed");
                ok = 0;
            }
            free(back);
        }
        if (access(tmp_path, F_OK) == 0) { fail(index, "a temp file was left behind"); ok = 0; }
        /* Put the good file back for the next case. */
        if (write_file(reg_path, good_file, good_len) != 0) { fail(index, "cannot restore the file"); return 0; }
        return ok;
    }
    default: fail(index, "unknown case kind %d", c->kind); return 0;
    }
    /* Nothing written: a refused call leaves the file exactly as it was. */
    if (have_before && (file_stamp(reg_path, &after) != 0 || !same_stamp(&before, &after))) {
        fail(index, "kind %d: the registry file changed although the call was refused", c->kind);
        ok = 0;
    }
    return ok;
}

static int cmd_hostile(const char *path, const char *casefile, int passes) {
    snprintf(reg_path, sizeof reg_path, "%s", path);
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp", path);
    snprintf(aside_path, sizeof aside_path, "%s.hostile-aside", path);
    FILE *cf = fopen(casefile, "rb");
    if (!cf) { perror(casefile); return 2; }
    peerreg_registry *r = open_or_die(path);
    peerreg_error *e = NULL;
    if (peerreg_register(r, "{\"id\":\"baseline\",\"url\":\"http://127.0.0.1:9/mcp\",\"liveness\":\"none\","
                            "\"capabilities\":{\"tools\":[\"t\"],\"resources\":[\"resource://b/\"],\"prompts\":[\"p\"]}}",
                         NULL, &e) != PEERREG_OK) {
        printf("fail 0 baseline register: %s\n", peerreg_error_message(e));
        return 1;
    }
    char *good = NULL;
    size_t good_len = 0;
    if (read_file(path, &good, &good_len) != 0) { printf("fail 0 cannot read the registry\n"); return 1; }
    char *out = NULL;
    e = NULL;
    peerreg_list(r, NULL, &out, &e);
    const char *g = out ? strstr(out, "\"generation\":") : NULL;
    long generation = g ? atol(g + 13) : -1;
    peerreg_free(out);
    peerreg_error_free(e);
    printf("rss start %ld\n", rss_kb());
    for (int pass = 0; pass < passes; pass++) {
        rewind(cf);
        struct hcase c;
        for (size_t i = 0; next_case(cf, &c); i++) {
            if (run_case(r, i, &c, good, good_len)) passed++;
            free(c.bytes);
            if (pass == 0 && i == 199) printf("rss warm %ld\n", rss_kb());
        }
        printf("rss pass%d %ld\n", pass + 1, rss_kb());
        fflush(stdout);
    }
    /* The generation is what it was before the first case: nothing was ever written (file
     * cases put back the same bytes through a foreign rename, which the library never writes). */
    out = NULL;
    e = NULL;
    int rc = peerreg_list(r, NULL, &out, &e);
    g = out ? strstr(out, "\"generation\":") : NULL;
    long after = g ? atol(g + 13) : -2;
    if (rc != PEERREG_OK || after != generation) { printf("fail -1 generation %ld -> %ld (rc %d)\n", generation, after, rc); failed++; }
    else passed++;
    peerreg_free(out);
    peerreg_error_free(e);
    peerreg_close(r);
    fclose(cf);
    free(good);
    printf("rss end %ld\n", rss_kb());
    printf("rss peak %ld\n", hwm_kb());
    printf("hostile %ld %ld\n", passed, failed);
    return failed ? 1 : 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && strcmp(argv[1], "ops") == 0) return cmd_ops(argv[2], argv[3], argc >= 5 && strcmp(argv[4], "--hold") == 0);
    if (argc == 4 && strcmp(argv[1], "hold") == 0) cmd_hold(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "ttl") == 0) cmd_ttl(argv[2], argv[3], atol(argv[4]));
    if (argc == 3 && strcmp(argv[1], "list") == 0) return cmd_list(argv[2]);
    if (argc == 5 && strcmp(argv[1], "hostile") == 0) return cmd_hostile(argv[2], argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: helper ops|hold|ttl|list|hostile ... (see tests/torture/helper.c)\n");
    return 2;
}
