/* C ABI tests: every function of peer_registry.h and every error code, reached through real
 * behaviour; ownership rules (every string freed with peerreg_free, every error with
 * peerreg_error_free — run under valgrind by run.sh); 8 threads sharing one handle; fork.
 * Usage: test_abi <scratch-dir> */
#define _GNU_SOURCE
#include "peer_registry.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdint.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
static char scratch[512];

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            passed++;                                                           \
        } else {                                                                \
            failed++;                                                           \
            fprintf(stderr, "FAIL %s:%d: %s — ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
        }                                                                       \
    } while (0)

/* Expects `call` to return `code`; checks the error object carries the same code and a
 * message, then frees it. */
#define EXPECT_CODE(code, call)                                                           \
    do {                                                                                  \
        peerreg_error *e_ = NULL;                                                         \
        int rc_ = (call)(&e_);                                                            \
        CHECK(rc_ == (code), "%s: got %d (%s) %s", #call, rc_, peerreg_errstr(rc_),       \
              e_ ? peerreg_error_message(e_) : "");                                       \
        if ((code) != PEERREG_OK) {                                                       \
            CHECK(e_ != NULL && peerreg_error_code(e_) == (code) &&                       \
                      strlen(peerreg_error_message(e_)) > 0,                              \
                  "%s: error object missing or wrong", #call);                            \
        } else {                                                                          \
            CHECK(e_ == NULL, "%s: error set on success", #call);                         \
        }                                                                                 \
        peerreg_error_free(e_);                                                           \
    } while (0)

static void path_in(char *out, size_t n, const char *dir, const char *file) {
    snprintf(out, n, "%s/%s/%s", scratch, dir, file);
}

static peerreg_registry *open_at(const char *dir) {
    char path[1024];
    path_in(path, sizeof path, dir, "servers.json");
    peerreg_registry *r = NULL;
    peerreg_error *e = NULL;
    int rc = peerreg_open(&r, path, &e);
    if (rc != PEERREG_OK) {
        fprintf(stderr, "open %s: %s\n", path, peerreg_error_message(e));
        peerreg_error_free(e);
        exit(2);
    }
    return r;
}

static int contains(const char *haystack, const char *needle) { return haystack && strstr(haystack, needle); }

/* ---- version, errstr, error accessors ---------------------------------------------------- */
static void test_version(void) {
    CHECK(peerreg_version_number() == PEERREG_VERSION_NUMBER, "header %d vs library %d",
          PEERREG_VERSION_NUMBER, peerreg_version_number());
    CHECK(strcmp(peerreg_version(), PEERREG_VERSION) == 0, "version %s", peerreg_version());
    const peerreg_code codes[] = {PEERREG_OK, PEERREG_EINVAL, PEERREG_ENOTFOUND, PEERREG_EEXISTS, PEERREG_ECORRUPT,
                         PEERREG_EIO, PEERREG_EPERM, PEERREG_ETIMEOUT, PEERREG_EAMBIGUOUS, PEERREG_ELIMIT,
                         PEERREG_ECLOSED};
    const char *names[] = {"PEERREG_OK", "PEERREG_EINVAL", "PEERREG_ENOTFOUND", "PEERREG_EEXISTS",
                           "PEERREG_ECORRUPT", "PEERREG_EIO", "PEERREG_EPERM", "PEERREG_ETIMEOUT",
                           "PEERREG_EAMBIGUOUS", "PEERREG_ELIMIT", "PEERREG_ECLOSED"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        CHECK(strncmp(peerreg_errstr(codes[i]), names[i], strlen(names[i])) == 0, "errstr(%d) = %s", codes[i],
              peerreg_errstr(codes[i]));
    CHECK(strcmp(peerreg_errstr(12345), "PEERREG_UNKNOWN_CODE") == 0, "unknown code");
    /* The named enum types hold their constants and pass as the int the functions take. */
    const peerreg_kind kind = PEERREG_PROMPT;
    const peerreg_health health = PEERREG_DOWN;
    CHECK(kind == 3 && health == 3 && (int)codes[10] == -10, "enum values");
    CHECK(peerreg_error_code(NULL) == PEERREG_OK, "error_code(NULL)");
    CHECK(strcmp(peerreg_error_message(NULL), "") == 0, "error_message(NULL)");
    peerreg_error_free(NULL);
    peerreg_free(NULL);
    peerreg_close(NULL);
    peerreg_watch_close(NULL);
    CHECK(peerreg_watch_fd(NULL) == -1, "watch_fd(NULL)");
}

/* ---- register / get / list / resolve / health / heartbeat / unregister ------------------- */
static peerreg_registry *R; /* for the EXPECT_CODE lambdas below */
static const char *ARG;

static int do_register(peerreg_error **e) { return peerreg_register(R, ARG, NULL, e); }
static int do_get(peerreg_error **e) {
    char *out = NULL;
    int rc = peerreg_get(R, ARG, &out, e);
    peerreg_free(out);
    return rc;
}
static int do_list(peerreg_error **e) {
    char *out = NULL;
    int rc = peerreg_list(R, ARG, &out, e);
    peerreg_free(out);
    return rc;
}
static int do_resolve_tool(peerreg_error **e) {
    char *out = NULL;
    int rc = peerreg_resolve(R, PEERREG_TOOL, ARG, &out, e);
    peerreg_free(out);
    return rc;
}
static int do_unregister(peerreg_error **e) { return peerreg_unregister(R, ARG, e); }
static int do_heartbeat(peerreg_error **e) { return peerreg_heartbeat(R, ARG, e); }

static void test_lifecycle(void) {
    peerreg_registry *r = open_at("life");
    peerreg_error *e = NULL;
    char *out = NULL;

    int rc = peerreg_register(r,
                              "{\"id\":\"journey\",\"name\":\"Journey\",\"url\":\"http://127.0.0.1:8080/mcp\","
                              "\"capabilities\":{\"tools\":[\"findTrips\"],\"resources\":[\"resource://journey/\"],"
                              "\"prompts\":[\"plan-trip\"]},\"metadata\":{\"team\":\"x\"},\"future\":{\"kept\":true}}",
                              &out, &e);
    CHECK(rc == PEERREG_OK, "register: %s", peerreg_error_message(e));
    CHECK(contains(out, "\"port\":8080") && contains(out, "\"transport\":\"http\"") &&
              contains(out, "\"liveness\":\"lease\"") && contains(out, "\"startedAt\":") &&
              contains(out, "\"future\":{\"kept\":true}"),
          "stored entry: %s", out);
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "\"pid\":%d", (int)getpid());
    CHECK(contains(out, pidtext), "pid filled in: %s", out);
    peerreg_free(out);
    out = NULL;

    rc = peerreg_get(r, "journey", &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "\"id\":\"journey\""), "get: %d %s", rc, out);
    peerreg_free(out);

    rc = peerreg_list(r, NULL, &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "\"generation\":1") && contains(out, "\"journey\""), "list: %s", out);
    peerreg_free(out);

    rc = peerreg_list(r, "{\"tool\":\"findTrips\",\"transport\":\"http\"}", &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "journey"), "list filtered: %s", out);
    peerreg_free(out);
    rc = peerreg_list(r, "{\"healthy\":true}", &out, &e);
    CHECK(rc == PEERREG_OK && !contains(out, "journey"), "healthy filter excludes UNKNOWN: %s", out);
    peerreg_free(out);

    rc = peerreg_resolve(r, PEERREG_TOOL, "findTrips", &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "journey"), "resolve tool");
    peerreg_free(out);
    rc = peerreg_resolve(r, PEERREG_TOOL, "journey.findTrips", &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "journey"), "resolve qualified tool");
    peerreg_free(out);
    rc = peerreg_resolve(r, PEERREG_RESOURCE, "resource://journey/trips/1", &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "journey"), "resolve resource prefix");
    peerreg_free(out);
    rc = peerreg_resolve(r, PEERREG_PROMPT, "plan-trip", &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "journey"), "resolve prompt");
    peerreg_free(out);

    rc = peerreg_set_health(r, "journey", PEERREG_HEALTHY, "all good", &e);
    CHECK(rc == PEERREG_OK, "set_health");
    rc = peerreg_get(r, "journey", &out, &e);
    CHECK(contains(out, "\"status\":\"HEALTHY\"") && contains(out, "\"message\":\"all good\"") &&
              contains(out, "\"lastCheck\":"),
          "health stored: %s", out);
    peerreg_free(out);
    rc = peerreg_set_health(r, "journey", PEERREG_DOWN, NULL, &e);
    CHECK(rc == PEERREG_OK, "set_health DOWN");
    R = r;
    ARG = "findTrips";
    EXPECT_CODE(PEERREG_ENOTFOUND, do_resolve_tool); /* DOWN servers never resolve */

    rc = peerreg_heartbeat(r, "journey", &e);
    CHECK(rc == PEERREG_OK, "heartbeat");

    int removed = -1;
    rc = peerreg_prune(r, &removed, &e);
    CHECK(rc == PEERREG_OK && removed == 0, "prune: %d removed %d", rc, removed);
    rc = peerreg_prune(r, NULL, &e);
    CHECK(rc == PEERREG_OK, "prune with NULL out");

    rc = peerreg_unregister(r, "journey", &e);
    CHECK(rc == PEERREG_OK, "unregister");
    ARG = "journey";
    EXPECT_CODE(PEERREG_ENOTFOUND, do_get);
    EXPECT_CODE(PEERREG_ENOTFOUND, do_unregister);
    EXPECT_CODE(PEERREG_ENOTFOUND, do_heartbeat);
    char lease[1024];
    path_in(lease, sizeof lease, "life", "leases/journey.lease");
    CHECK(access(lease, F_OK) != 0, "lease file removed on unregister");
    peerreg_close(r);
}

/* ---- invalid arguments -------------------------------------------------------------------- */
static void test_einval(void) {
    peerreg_registry *r = open_at("inval");
    peerreg_error *e = NULL;
    char *out = (char *)1;

    CHECK(peerreg_open(NULL, NULL, NULL) == PEERREG_EINVAL, "open(NULL out)");
    CHECK(peerreg_register(NULL, "{}", NULL, NULL) == PEERREG_EINVAL, "register(NULL reg)");
    CHECK(peerreg_get(r, "x", NULL, NULL) == PEERREG_EINVAL, "get(NULL out)");
    CHECK(peerreg_get(r, NULL, &out, NULL) == PEERREG_EINVAL && out == NULL, "get(NULL id) clears out");
    CHECK(peerreg_list(r, NULL, NULL, NULL) == PEERREG_EINVAL, "list(NULL out)");
    CHECK(peerreg_resolve(r, 99, "x", &out, NULL) == PEERREG_EINVAL, "resolve(unknown kind)");
    CHECK(peerreg_set_health(r, "x", 7, NULL, NULL) == PEERREG_EINVAL, "set_health(unknown status)");
    CHECK(peerreg_watch_open(NULL, r, NULL) == PEERREG_EINVAL, "watch_open(NULL out)");
    CHECK(peerreg_watch_next(NULL, 0, &out, NULL) == PEERREG_EINVAL, "watch_next(NULL)");

    R = r;
    const char *bad[] = {
        "not json", "{\"id\":\"a\"", "[1,2]", "{\"id\":\"../etc\",\"url\":\"http://x:1/\"}",
        "{\"id\":\"a.b\",\"url\":\"http://x:1/\"}", "{\"url\":\"http://x:1/\"}",
        "{\"id\":\"a\",\"url\":\"http://x:1/\",\"port\":\"80\"}", "{\"id\":\"a\",\"url\":\"http://x:1/\",\"transport\":\"smtp\"}",
        "{\"id\":\"a\",\"url\":\"http://x:1/\",\"liveness\":\"forever\"}", "{\"id\":\"a\",\"url\":\"http://x:1/\",\"id\":\"b\"}",
        "{\"id\":\"a\",\"url\":\"has space\"}", "{\"id\":\"a\"}", "{\"id\":\"a\",\"url\":\"http://x:1/\",\"liveness\":\"pid\"}",
        "{\"id\":\"a\",\"url\":\"http://x:1/\",\"capabilities\":{\"tools\":[1]}}",
        "{\"id\":\"a\",\"url\":\"http://x:1/\",\"health\":{\"status\":\"FINE\"}}",
        "{\"id\":\"a\",\"url\":\"http://x:1/\"} trailing",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ARG = bad[i];
        EXPECT_CODE(PEERREG_EINVAL, do_register);
    }
    const char invalid_utf8[] = "{\"id\":\"a\",\"url\":\"http://x:1/\",\"name\":\"\xff\xfe\"}";
    ARG = invalid_utf8;
    EXPECT_CODE(PEERREG_EINVAL, do_register);
    ARG = "{\"bogus\":1}";
    EXPECT_CODE(PEERREG_EINVAL, do_list);
    ARG = "{\"healthy\":\"yes\"}";
    EXPECT_CODE(PEERREG_EINVAL, do_list);

    out = NULL;
    int rc = peerreg_list(r, NULL, &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "\"servers\":[]"), "nothing was written by bad input: %s", out);
    peerreg_free(out);
    peerreg_close(r);
}

/* ---- limits --------------------------------------------------------------------------------- */
static void test_elimit(void) {
    peerreg_registry *r = open_at("limit");
    R = r;
    size_t n = 10000;
    char *big = malloc(n + 100);
    int len = snprintf(big, n + 100, "{\"id\":\"a\",\"url\":\"http://x:1/\",\"name\":\"");
    memset(big + len, 'x', n);
    strcpy(big + len + n, "\"}");
    ARG = big;
    EXPECT_CODE(PEERREG_ELIMIT, do_register); /* name longer than 4096 bytes */
    free(big);

    char deep[512] = "{\"id\":\"a\",\"url\":\"http://x:1/\",\"metadata\":";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    for (int i = 0; i < 40; i++) strcat(deep, "]");
    strcat(deep, "}");
    ARG = deep;
    EXPECT_CODE(PEERREG_ELIMIT, do_register); /* nested deeper than 16 */
    peerreg_close(r);
}

/* ---- EEXISTS, EAMBIGUOUS -------------------------------------------------------------------- */
static void test_exists_and_ambiguous(void) {
    peerreg_registry *a = open_at("exists"), *b = open_at("exists");
    peerreg_error *e = NULL;
    int rc = peerreg_register(a, "{\"id\":\"one\",\"url\":\"http://127.0.0.1:1/\",\"capabilities\":{\"tools\":[\"t\"]}}", NULL, &e);
    CHECK(rc == PEERREG_OK, "register one");
    R = b;
    ARG = "{\"id\":\"one\",\"url\":\"http://127.0.0.1:2/\"}";
    EXPECT_CODE(PEERREG_EEXISTS, do_register);
    R = a; /* the owner may replace its own entry */
    ARG = "{\"id\":\"one\",\"url\":\"http://127.0.0.1:3/\",\"capabilities\":{\"tools\":[\"t\"]}}";
    EXPECT_CODE(PEERREG_OK, do_register);

    rc = peerreg_register(b, "{\"id\":\"two\",\"url\":\"http://127.0.0.1:4/\",\"capabilities\":{\"tools\":[\"t\"]}}", NULL, &e);
    CHECK(rc == PEERREG_OK, "register two");
    R = b;
    ARG = "t";
    EXPECT_CODE(PEERREG_EAMBIGUOUS, do_resolve_tool);
    char *out = NULL;
    rc = peerreg_resolve(b, PEERREG_TOOL, "t", &out, &e);
    CHECK(rc == PEERREG_EAMBIGUOUS && contains(peerreg_error_message(e), "one") &&
              contains(peerreg_error_message(e), "two"),
          "ambiguous message lists candidates: %s", peerreg_error_message(e));
    peerreg_error_free(e);
    e = NULL;
    rc = peerreg_set_health(b, "two", PEERREG_HEALTHY, NULL, &e);
    rc = peerreg_resolve(b, PEERREG_TOOL, "t", &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "\"two\""), "HEALTHY beats UNKNOWN: %s", out);
    peerreg_free(out);

    peerreg_close(a); /* close unregisters a's lease entries */
    rc = peerreg_get(b, "one", &out, &e);
    CHECK(rc == PEERREG_ENOTFOUND, "closing a handle unregisters its entries (%d)", rc);
    peerreg_error_free(e);
    peerreg_close(b);
}

/* ---- ECORRUPT, EPERM, EIO, ETIMEOUT, ECLOSED ------------------------------------------------ */
static void test_file_errors(void) {
    char path[1024], dir[1024];
    peerreg_registry *r = open_at("corrupt");
    R = r;
    path_in(path, sizeof path, "corrupt", "servers.json");
    FILE *f = fopen(path, "w");
    fputs("{\"servers\": [ {\"id\": \"x\", ", f);
    fclose(f);
    chmod(path, 0600);
    ARG = NULL;
    EXPECT_CODE(PEERREG_ECORRUPT, do_list);
    ARG = "{\"id\":\"a\",\"url\":\"http://x:1/\"}";
    EXPECT_CODE(PEERREG_ECORRUPT, do_register);
    f = fopen(path, "r");
    char buf[128] = {0};
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    CHECK(got > 0 && strcmp(buf, "{\"servers\": [ {\"id\": \"x\", ") == 0, "corrupt file left untouched: %s", buf);
    char *out = NULL;
    peerreg_error *e = NULL;
    peerreg_list(r, NULL, &out, &e);
    CHECK(contains(peerreg_error_message(e), "servers.json") && contains(peerreg_error_message(e), "line 1"),
          "corrupt message names path and position: %s", peerreg_error_message(e));
    peerreg_error_free(e);
    peerreg_close(r);

    path_in(dir, sizeof dir, "perm", "");
    r = open_at("perm");
    peerreg_close(r);
    chmod(dir, 0777);
    path_in(path, sizeof path, "perm", "servers.json");
    peerreg_registry *p = NULL;
    e = NULL;
    int rc = peerreg_open(&p, path, &e);
    CHECK(rc == PEERREG_EPERM && p == NULL && contains(peerreg_error_message(e), "chmod 700"),
          "group/other-writable dir refused: %d %s", rc, peerreg_error_message(e));
    peerreg_error_free(e);
    chmod(dir, 0700);

    /* a symlinked servers.json is refused, not followed */
    char target[1024];
    path_in(target, sizeof target, "perm", "elsewhere.json");
    f = fopen(target, "w");
    fputs("{\"servers\":[]}", f);
    fclose(f);
    unlink(path);
    CHECK(symlink(target, path) == 0, "symlink");
    e = NULL;
    rc = peerreg_open(&p, path, &e);
    CHECK(rc == PEERREG_EPERM && contains(peerreg_error_message(e), "symbolic link"), "symlink refused: %d %s", rc,
          peerreg_error_message(e));
    peerreg_error_free(e);
    unlink(path);

    /* a servers.json with a second hard link is refused */
    CHECK(link(target, path) == 0, "link");
    chmod(target, 0600);
    e = NULL;
    rc = peerreg_open(&p, path, &e);
    CHECK(rc == PEERREG_EPERM && contains(peerreg_error_message(e), "hard links"), "hard link refused: %d %s", rc,
          peerreg_error_message(e));
    peerreg_error_free(e);
    unlink(path);
    unlink(target);

    /* EIO: the directory cannot be created under a regular file */
    e = NULL;
    rc = peerreg_open(&p, "/etc/hostname/sub/servers.json", &e);
    CHECK(rc == PEERREG_EIO && p == NULL, "uncreatable directory: %d %s", rc, peerreg_error_message(e));
    peerreg_error_free(e);

    /* ETIMEOUT: another process holds the file lock (PEER_REGISTRY_LOCK_TIMEOUT_MS=300 from run.sh) */
    r = open_at("timeout");
    char lockpath[1024];
    path_in(lockpath, sizeof lockpath, "timeout", "servers.json.lock");
    int go[2];
    CHECK(pipe(go) == 0, "pipe");
    pid_t holder = fork();
    if (holder == 0) {
        int fd = open(lockpath, O_RDWR);
        flock(fd, LOCK_EX);
        char pidtext[32];
        int n = snprintf(pidtext, sizeof pidtext, "%d\n", (int)getpid());
        if (pwrite(fd, pidtext, (size_t)n, 0) < 0) _exit(1);
        if (write(go[1], "x", 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    char c;
    CHECK(read(go[0], &c, 1) == 1, "holder ready");
    e = NULL;
    rc = peerreg_register(r, "{\"id\":\"late\",\"url\":\"http://x:1/\"}", NULL, &e);
    char holdertext[64];
    snprintf(holdertext, sizeof holdertext, "pid %d", (int)holder);
    CHECK(rc == PEERREG_ETIMEOUT && contains(peerreg_error_message(e), holdertext),
          "lock timeout names the holder: %d %s", rc, peerreg_error_message(e));
    peerreg_error_free(e);
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    close(go[0]);
    close(go[1]);
    rc = peerreg_register(r, "{\"id\":\"late\",\"url\":\"http://x:1/\"}", NULL, NULL);
    CHECK(rc == PEERREG_OK, "the lock is free again once the holder dies: %d", rc);

    /* ECLOSED: use after close; double close is a no-op */
    peerreg_close(r);
    peerreg_close(r);
    R = r;
    ARG = "late";
    EXPECT_CODE(PEERREG_ECLOSED, do_get);
    EXPECT_CODE(PEERREG_ECLOSED, do_heartbeat);
    peerreg_watch *w = NULL;
    CHECK(peerreg_watch_open(&w, r, NULL) == PEERREG_ECLOSED && w == NULL, "watch_open on closed handle");
    CHECK(peerreg_get((peerreg_registry *)(uintptr_t)0x1234, "x", &out, NULL) == PEERREG_ECLOSED,
          "a forged handle is not dereferenced");
}

/* ---- watch ---------------------------------------------------------------------------------- */
static void test_watch(void) {
    peerreg_registry *r = open_at("watch"), *other = open_at("watch");
    peerreg_watch *w = NULL;
    peerreg_error *e = NULL;
    char *ev = NULL;
    int rc = peerreg_watch_open(&w, r, &e);
    CHECK(rc == PEERREG_OK && w != NULL, "watch_open");
    int fd = peerreg_watch_fd(w);
    CHECK(fd >= 0, "watch fd");
    rc = peerreg_watch_next(w, 0, &ev, &e);
    CHECK(rc == PEERREG_ETIMEOUT && ev == NULL, "no event yet: %d", rc);
    peerreg_error_free(e);
    e = NULL;

    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pfd, 1, 0) == 0, "fd not readable before a change");
    peerreg_register(other, "{\"id\":\"w1\",\"url\":\"http://127.0.0.1:5/\"}", NULL, NULL);
    CHECK(poll(&pfd, 1, 2000) == 1, "fd readable after a change");
    rc = peerreg_watch_next(w, 0, &ev, &e);
    CHECK(rc == PEERREG_OK && contains(ev, "\"added\":[{\"id\":\"w1\"") && contains(ev, "\"removed\":[]"),
          "added event: %s", ev);
    peerreg_free(ev);

    /* a burst of writes between two reads is one diff, nothing missed */
    peerreg_register(other, "{\"id\":\"w2\",\"url\":\"http://127.0.0.1:6/\"}", NULL, NULL);
    peerreg_set_health(other, "w1", PEERREG_HEALTHY, NULL, NULL);
    peerreg_unregister(other, "w2", NULL);
    peerreg_register(other, "{\"id\":\"w3\",\"url\":\"http://127.0.0.1:7/\"}", NULL, NULL);
    rc = peerreg_watch_next(w, 1000, &ev, &e);
    CHECK(rc == PEERREG_OK && contains(ev, "\"added\":[{\"id\":\"w3\"") && contains(ev, "\"changed\":[{\"id\":\"w1\"") &&
              !contains(ev, "w2"),
          "coalesced event: %s", ev);
    peerreg_free(ev);

    /* closing the other handle releases its leases: seen as removed */
    peerreg_close(other);
    rc = peerreg_watch_next(w, 2000, &ev, &e);
    CHECK(rc == PEERREG_OK && contains(ev, "\"removed\":[{\"id\":\"w1\"") && contains(ev, "w3"), "removed event: %s", ev);
    peerreg_free(ev);

    /* the watch outlives the handle it was opened on */
    peerreg_close(r);
    peerreg_registry *third = open_at("watch");
    peerreg_register(third, "{\"id\":\"w4\",\"url\":\"http://127.0.0.1:8/\"}", NULL, NULL);
    rc = peerreg_watch_next(w, 2000, &ev, &e);
    CHECK(rc == PEERREG_OK && contains(ev, "\"added\":[{\"id\":\"w4\""), "event after the registry handle closed: %d %s", rc, ev);
    peerreg_free(ev);
    peerreg_close(third);

    peerreg_watch_close(w);
    peerreg_watch_close(w);
    CHECK(peerreg_watch_fd(w) == -1, "fd of a closed watch");
    ev = NULL;
    CHECK(peerreg_watch_next(w, 0, &ev, NULL) == PEERREG_ECLOSED && ev == NULL, "next on a closed watch");
    peerreg_close(r);
}

/* ---- 8 threads sharing one handle ------------------------------------------------------------ */
static peerreg_registry *shared;
static int thread_failures;

static void *worker(void *arg) {
    long n = (long)arg;
    char json[256], id[32];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "t%ld-%d", n, i);
        snprintf(json, sizeof json, "{\"id\":\"%s\",\"url\":\"http://127.0.0.1:%d/\",\"capabilities\":{\"tools\":[\"tool-%s\"]}}",
                 id, 10000 + (int)n * 100 + i, id);
        char *out = NULL;
        if (peerreg_register(shared, json, &out, NULL) != PEERREG_OK) __atomic_add_fetch(&thread_failures, 1, __ATOMIC_SEQ_CST);
        peerreg_free(out);
        out = NULL;
        if (peerreg_get(shared, id, &out, NULL) != PEERREG_OK) __atomic_add_fetch(&thread_failures, 1, __ATOMIC_SEQ_CST);
        peerreg_free(out);
        out = NULL;
        char tool[64];
        snprintf(tool, sizeof tool, "tool-%s", id);
        if (peerreg_resolve(shared, PEERREG_TOOL, tool, &out, NULL) != PEERREG_OK) __atomic_add_fetch(&thread_failures, 1, __ATOMIC_SEQ_CST);
        peerreg_free(out);
        out = NULL;
        if (peerreg_list(shared, NULL, &out, NULL) != PEERREG_OK) __atomic_add_fetch(&thread_failures, 1, __ATOMIC_SEQ_CST);
        peerreg_free(out);
        if (peerreg_set_health(shared, id, PEERREG_HEALTHY, "ok", NULL) != PEERREG_OK) __atomic_add_fetch(&thread_failures, 1, __ATOMIC_SEQ_CST);
        if (i % 2 == 0 && peerreg_unregister(shared, id, NULL) != PEERREG_OK) __atomic_add_fetch(&thread_failures, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void test_threads(void) {
    shared = open_at("threads");
    pthread_t t[8];
    for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    CHECK(thread_failures == 0, "%d failed calls in 8 threads", thread_failures);
    char *out = NULL;
    peerreg_list(shared, NULL, &out, NULL);
    int count = 0;
    for (const char *p = out; (p = strstr(p, "\"id\":\"t")); p++) count++;
    CHECK(count == 8 * 20, "exactly the 160 entries not unregistered remain, got %d", count);
    peerreg_free(out);
    peerreg_close(shared);
}

/* ---- closing while other threads use the handle (issue 11) ------------------------------------ */
static peerreg_registry *closing;
static int close_bad;
static void *closing_worker(void *arg) {
    long n = (long)arg;
    for (int i = 0; i < 500; i++) {
        char json[160];
        snprintf(json, sizeof json, "{\"id\":\"c%ld-%d\",\"url\":\"http://127.0.0.1:%d/\"}", n, i, 20000 + i);
        peerreg_error *e = NULL;
        int rc = peerreg_register(closing, json, NULL, &e);
        peerreg_error_free(e);
        if (rc == PEERREG_ECLOSED) break;
        if (rc != PEERREG_OK) __atomic_add_fetch(&close_bad, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static peerreg_watch *blocked_watch;
static int blocked_rc = 1;
static void *blocked_next(void *arg) {
    (void)arg;
    char *out = NULL;
    blocked_rc = peerreg_watch_next(blocked_watch, -1, &out, NULL);
    peerreg_free(out);
    return NULL;
}

static void test_close_during_calls(void) {
    /* 8 threads registering while another closes the handle: every call OK or ECLOSED (was:
     * EIO "flock(...) failed: Bad file descriptor", the lock dropped mid-write). */
    for (int round = 0; round < 3; round++) {
        char name[32];
        snprintf(name, sizeof name, "closing%d", round);
        closing = open_at(name);
        pthread_t t[8];
        for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, closing_worker, (void *)i);
        usleep(20000 + round * 20000);
        peerreg_close(closing);
        for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    }
    CHECK(close_bad == 0, "%d calls failed with something other than ECLOSED while the handle closed", close_bad);
    /* Closing a watch wakes a peerreg_watch_next(-1) blocked in another thread (was: close blocked). */
    peerreg_registry *reg = open_at("blocked-watch");
    CHECK(peerreg_watch_open(&blocked_watch, reg, NULL) == PEERREG_OK, "watch_open");
    pthread_t waiter;
    pthread_create(&waiter, NULL, blocked_next, NULL);
    usleep(100000);
    peerreg_watch_close(blocked_watch);
    pthread_join(waiter, NULL);
    CHECK(blocked_rc == PEERREG_ECLOSED, "a blocked watch_next returned %d after watch_close", blocked_rc);
    peerreg_close(reg);
}

/* ---- fork ------------------------------------------------------------------------------------- */
static void test_fork(void) {
    char path[1024];
    path_in(path, sizeof path, "fork", "servers.json");
    peerreg_registry *probe = open_at("fork");

    /* The child of a handle's owner: the inherited handle is closed; the child's copy of the
     * parent's lease is dropped, so the parent's death is seen while the child lives on. */
    int ready[2];
    CHECK(pipe(ready) == 0, "pipe");
    pid_t owner = fork();
    if (owner == 0) {
        peerreg_registry *r = NULL;
        if (peerreg_open(&r, path, NULL) != PEERREG_OK) _exit(1);
        if (peerreg_register(r, "{\"id\":\"parent\",\"url\":\"http://127.0.0.1:9/\"}", NULL, NULL) != PEERREG_OK) _exit(2);
        pid_t child = fork();
        if (child == 0) {
            char *out = NULL;
            int rc = peerreg_get(r, "parent", &out, NULL);
            peerreg_close(r); /* must not unregister the parent's entry */
            if (write(ready[1], rc == PEERREG_ECLOSED ? "C" : "X", 1) != 1) _exit(3);
            sleep(30);
            _exit(0);
        }
        pause();
        _exit(0);
    }
    char verdict = 0;
    CHECK(read(ready[0], &verdict, 1) == 1 && verdict == 'C', "inherited handle is ECLOSED in the child (%c)", verdict);
    char *out = NULL;
    int rc = peerreg_get(probe, "parent", &out, NULL);
    CHECK(rc == PEERREG_OK, "the child's close did not unregister the parent's entry (%d)", rc);
    peerreg_free(out);
    out = NULL;
    kill(owner, SIGKILL);
    waitpid(owner, NULL, 0);
    rc = peerreg_get(probe, "parent", &out, NULL);
    CHECK(rc == PEERREG_ENOTFOUND, "the parent's death is seen although its child still runs (%d)", rc);
    peerreg_free(out);
    close(ready[0]);
    close(ready[1]);
    peerreg_close(probe);
}

/* ---- active probes against real loopback listeners ------------------------------------------- */
static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0) return -1;
    return fd;
}

static int port_of(int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

/* Answers the probe's MCP handshake like a streamable-HTTP server (the real SDK server is
 * tested in bindings/python/tests/test_probe.py): initialize (with a session), the initialized
 * notification (202), ping, and the DELETE of the session. One request per connection. */
static void *mcp_responder(void *arg) {
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0) return NULL;
        char buf[4096];
        ssize_t n = read(c, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        const char *status = "200 OK", *extra = "", *body = "";
        if (strstr(buf, "\"method\":\"initialize\"")) {
            body = "{\"jsonrpc\":\"2.0\",\"id\":\"peer-registry-probe-init\",\"result\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{}}}";
            extra = "Mcp-Session-Id: c-test\r\n";
        } else if (strstr(buf, "notifications/initialized")) {
            status = "202 Accepted";
        } else if (strstr(buf, "\"method\":\"ping\"")) {
            body = "{\"jsonrpc\":\"2.0\",\"id\":\"peer-registry-probe-ping\",\"result\":{}}";
        }
        char resp[768];
        int len = snprintf(resp, sizeof resp, "HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
                           status, extra, strlen(body), body);
        if (write(c, resp, (size_t)len) < 0) {}
        close(c);
    }
}

static int probe(peerreg_registry *r, const char *id, int timeout_ms, char **out) {
    peerreg_error *e = NULL;
    int rc = peerreg_probe(r, id, timeout_ms, out, &e);
    if (rc != PEERREG_OK) fprintf(stderr, "probe %s: %s\n", id, peerreg_error_message(e));
    peerreg_error_free(e);
    return rc;
}

static void test_probe(void) {
    peerreg_registry *r = open_at("probe");
    int up = listen_on(0), hang = listen_on(0), gone = listen_on(0);
    int up_port = port_of(up), hang_port = port_of(hang), gone_port = port_of(gone);
    close(gone); /* nothing listens there now: connections are refused */
    pthread_t responder;
    pthread_create(&responder, NULL, mcp_responder, (void *)(intptr_t)up);

    char json[256];
    snprintf(json, sizeof json, "{\"id\":\"up\",\"url\":\"http://127.0.0.1:%d/mcp\",\"liveness\":\"none\",\"capabilities\":{\"tools\":[\"pt\"]}}", up_port);
    CHECK(peerreg_register(r, json, NULL, NULL) == PEERREG_OK, "register up");
    snprintf(json, sizeof json, "{\"id\":\"upws\",\"url\":\"ws://127.0.0.1:%d/\",\"liveness\":\"none\"}", up_port);
    CHECK(peerreg_register(r, json, NULL, NULL) == PEERREG_OK, "register upws");
    snprintf(json, sizeof json, "{\"id\":\"hang\",\"url\":\"http://127.0.0.1:%d/mcp\",\"liveness\":\"none\"}", hang_port);
    CHECK(peerreg_register(r, json, NULL, NULL) == PEERREG_OK, "register hang");
    snprintf(json, sizeof json, "{\"id\":\"gone\",\"url\":\"http://127.0.0.1:%d/mcp\",\"liveness\":\"none\",\"capabilities\":{\"tools\":[\"gt\"]}}", gone_port);
    CHECK(peerreg_register(r, json, NULL, NULL) == PEERREG_OK, "register gone");

    char *out = NULL;
    CHECK(probe(r, "up", 1000, &out) == PEERREG_OK && contains(out, "\"status\":\"HEALTHY\"") && contains(out, "MCP ping ok"),
          "answering MCP server is HEALTHY: %s", out);
    peerreg_free(out);
    out = NULL;
    CHECK(probe(r, "upws", 1000, &out) == PEERREG_OK && contains(out, "\"status\":\"HEALTHY\"") && contains(out, "TCP connect"),
          "ws server accepting TCP is HEALTHY: %s", out);
    peerreg_free(out);
    out = NULL;
    CHECK(probe(r, "hang", 300, &out) == PEERREG_OK && contains(out, "\"status\":\"DEGRADED\"") && contains(out, "300 ms"),
          "a server that never answers is DEGRADED after one timeout: %s", out);
    peerreg_free(out);
    out = NULL;
    CHECK(probe(r, "gone", 1000, &out) == PEERREG_OK && contains(out, "\"status\":\"DEGRADED\"") && contains(out, "refused") &&
              contains(out, "\"consecutiveFailures\":1"),
          "refused: DEGRADED after 1 failure: %s", out);
    peerreg_free(out);
    out = NULL;
    CHECK(probe(r, "gone", 1000, &out) == PEERREG_OK && contains(out, "\"status\":\"DEGRADED\""), "still DEGRADED after 2: %s", out);
    peerreg_free(out);
    out = NULL;
    CHECK(probe(r, "gone", 1000, &out) == PEERREG_OK && contains(out, "\"status\":\"DOWN\"") && contains(out, "\"consecutiveFailures\":3"),
          "DOWN after 3 consecutive failures: %s", out);
    peerreg_free(out);
    out = NULL;
    CHECK(peerreg_resolve(r, PEERREG_TOOL, "gt", &out, NULL) == PEERREG_ENOTFOUND, "a DOWN server does not resolve");
    int back = listen_on(gone_port);
    CHECK(back >= 0, "listen again on the refused port");
    pthread_t responder2;
    pthread_create(&responder2, NULL, mcp_responder, (void *)(intptr_t)back);
    CHECK(probe(r, "gone", 1000, &out) == PEERREG_OK && contains(out, "\"status\":\"HEALTHY\"") && !contains(out, "consecutiveFailures"),
          "back to HEALTHY on success, failures reset: %s", out);
    peerreg_free(out);
    out = NULL;
    CHECK(peerreg_resolve(r, PEERREG_TOOL, "gt", &out, NULL) == PEERREG_OK, "resolves again once HEALTHY");
    peerreg_free(out);
    peerreg_error *e = NULL;
    CHECK(peerreg_probe(r, "nobody", 100, NULL, &e) == PEERREG_ENOTFOUND, "probe of an unknown id");
    peerreg_error_free(e);
    shutdown(up, SHUT_RDWR);
    shutdown(back, SHUT_RDWR);
    close(up);
    close(back);
    pthread_join(responder, NULL);
    pthread_join(responder2, NULL);
    close(hang);
    peerreg_close(r);
}

/* ---- repeated work does not grow memory --------------------------------------------------------- */
static void test_churn(void) {
    peerreg_registry *r = open_at("churn");
    for (int i = 0; i < 200; i++) {
        char *out = NULL;
        peerreg_error *e = NULL;
        peerreg_register(r, "{\"id\":\"c\",\"url\":\"http://127.0.0.1:11/\",\"capabilities\":{\"tools\":[\"x\"]}}", &out, &e);
        peerreg_free(out);
        out = NULL;
        peerreg_resolve(r, PEERREG_TOOL, "nope", &out, &e);
        peerreg_error_free(e);
        e = NULL;
        peerreg_unregister(r, "c", &e);
    }
    peerreg_close(r);
    passed++;
}

/* 0.2.0: cluster scope (docs/CLUSTER.md). The view beside the registry is written by hand in
 * its documented format; no agent holds the agent lock, so remote entries are stale. */
static void test_cluster_scope(void) {
    char dir[600], path[700], view[700];
    snprintf(dir, sizeof dir, "%s/cluster", scratch);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/servers.json", dir);
    snprintf(view, sizeof view, "%s/servers.cluster.json", dir);
    peerreg_registry *r = NULL;
    peerreg_error *e = NULL;
    char *out = NULL;
    int rc = peerreg_open(&r, path, &e);
    CHECK(rc == PEERREG_OK, "open: %d", rc);
    rc = peerreg_register(r, "{\"id\":\"here\",\"url\":\"http://127.0.0.1:1/mcp\",\"liveness\":\"none\",\"scope\":\"cluster\","
                             "\"capabilities\":{\"tools\":[\"both\"]}}", NULL, &e);
    CHECK(rc == PEERREG_OK, "register scope cluster: %d", rc);
    rc = peerreg_register(r, "{\"id\":\"bad\",\"url\":\"http://127.0.0.1:1/mcp\",\"scope\":\"planet\"}", NULL, &e);
    CHECK(rc == PEERREG_EINVAL && e != NULL, "bad scope: %d", rc);
    peerreg_error_free(e);
    e = NULL;
    peerreg_watch *w = NULL;
    rc = peerreg_watch_open_filtered(&w, r, "{\"scope\":\"cluster\"}", &e);
    CHECK(rc == PEERREG_OK && w != NULL, "watch_open_filtered: %d", rc);
    FILE *f = fopen(view, "w");
    if (f) {
        fputs("{\"version\":1,\"generation\":1,\"node\":\"me\",\"etcd\":\"connected\",\"revision\":3,\"servers\":[\n"
              "{\"id\":\"far\",\"node\":\"B\",\"url\":\"http://10.0.0.2:1/mcp\",\"liveness\":\"none\",\"capabilities\":{\"tools\":[\"both\",\"far-only\"]}}\n]}\n", f);
        fclose(f);
    }
    chmod(view, 0600);
    rc = peerreg_watch_next(w, 5000, &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "\"far\"") && contains(out, "\"node\":\"B\""), "cluster watch event: %d %s", rc, out ? out : "");
    peerreg_free(out);
    out = NULL;
    peerreg_watch_close(w);
    rc = peerreg_list(r, NULL, &out, &e);
    CHECK(rc == PEERREG_OK && !contains(out, "\"far\""), "local list: %s", out ? out : "");
    peerreg_free(out);
    rc = peerreg_list(r, "{\"scope\":\"cluster\"}", &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "\"far\"") && contains(out, "\"stale\":true"), "cluster list: %s", out ? out : "");
    peerreg_free(out);
    rc = peerreg_resolve_scoped(r, PEERREG_TOOL, "far-only", PEERREG_SCOPE_CLUSTER, &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "\"node\":\"B\""), "resolve_scoped remote: %d", rc);
    peerreg_free(out);
    rc = peerreg_resolve_scoped(r, PEERREG_TOOL, "both", PEERREG_SCOPE_CLUSTER, &out, &e);
    CHECK(rc == PEERREG_OK && contains(out, "\"here\""), "resolve_scoped prefers local: %d", rc);
    peerreg_free(out);
    out = NULL;
    rc = peerreg_resolve_scoped(r, PEERREG_TOOL, "far-only", PEERREG_SCOPE_LOCAL, &out, &e);
    CHECK(rc == PEERREG_ENOTFOUND && out == NULL, "resolve_scoped local: %d", rc);
    peerreg_error_free(e);
    e = NULL;
    rc = peerreg_resolve_scoped(r, PEERREG_TOOL, "both", 7, &out, &e);
    CHECK(rc == PEERREG_EINVAL && out == NULL && e != NULL, "bad scope: %d", rc);
    peerreg_error_free(e);
    e = NULL;
    rc = peerreg_watch_open_filtered(&w, r, "{\"scope\":\"galaxy\"}", &e);
    CHECK(rc == PEERREG_EINVAL && w == NULL, "bad watch filter: %d", rc);
    peerreg_error_free(e);
    e = NULL;
    rc = peerreg_watch_open_filtered(&w, r, NULL, &e);
    CHECK(rc == PEERREG_OK && w != NULL, "NULL filter: %d", rc);
    peerreg_watch_close(w);
    rc = peerreg_watch_open_filtered(NULL, r, NULL, &e);
    CHECK(rc == PEERREG_EINVAL, "NULL out: %d", rc);
    peerreg_error_free(e);
    e = NULL;
    peerreg_close(r);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <scratch-dir>\n", argv[0]);
        return 2;
    }
    snprintf(scratch, sizeof scratch, "%s", argv[1]);
    signal(SIGPIPE, SIG_IGN);
    test_version();
    test_lifecycle();
    test_einval();
    test_elimit();
    test_exists_and_ambiguous();
    test_file_errors();
    test_watch();
    test_threads();
    test_close_during_calls();
    test_fork();
    test_probe();
    test_churn();
    test_cluster_scope();
    printf("c abi: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
