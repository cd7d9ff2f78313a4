/* The C runner of tests/conformance/cases.json (tests/conformance/README.md): every step
 * through include/peer_registry.h. The cases are read with cJSON (libcjson-dev).
 * Usage: runner cases.json */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peer_registry.h"

#define MAX_HANDLES 8

static char temp_root[4096];
static char clock_file[4200];

/* The code's name: peerreg_errstr's text up to the colon ("PEERREG_ENOTFOUND: not found"). */
static void code_name(int code, char *out, size_t n) {
    const char *s = peerreg_errstr(code);
    size_t len = strcspn(s, ":");
    snprintf(out, n, "%.*s", (int)len, s);
}

/* The case's "$pid" placeholders below parent as this process's pid, in place. */
static void substitute_in(cJSON *parent) {
    cJSON *child = parent ? parent->child : NULL;
    while (child) {
        cJSON *next = child->next;
        if (cJSON_IsString(child) && strcmp(child->valuestring, "$pid") == 0) {
            cJSON *pid = cJSON_CreateNumber((double)getpid());
            if (cJSON_IsObject(parent)) cJSON_ReplaceItemInObjectCaseSensitive(parent, child->string, pid);
            else cJSON_ReplaceItemViaPointer(parent, child, pid);
        } else if (cJSON_IsObject(child) || cJSON_IsArray(child)) {
            substitute_in(child);
        }
        child = next;
    }
}

static int matches(const cJSON *expected, const cJSON *actual) {
    if (cJSON_IsObject(expected)) {
        if (!cJSON_IsObject(actual)) return 0;
        for (const cJSON *m = expected->child; m; m = m->next) {
            const cJSON *got = cJSON_GetObjectItemCaseSensitive(actual, m->string);
            if (cJSON_IsNull(m)) {
                if (got && !cJSON_IsNull(got)) return 0;
            } else if (!got || !matches(m, got)) {
                return 0;
            }
        }
        return 1;
    }
    if (cJSON_IsArray(expected)) {
        if (!cJSON_IsArray(actual) || cJSON_GetArraySize(expected) != cJSON_GetArraySize(actual)) return 0;
        for (const cJSON *e = expected->child, *a = actual->child; e; e = e->next, a = a->next) {
            if (!matches(e, a)) return 0;
        }
        return 1;
    }
    return cJSON_Compare(expected, actual, 1);
}

struct run {
    char path[4300];
    const char *names[MAX_HANDLES];
    peerreg_registry *handles[MAX_HANDLES];
    long long mark;
    char failure[2048];
};

static void fail(struct run *r, int step, const char *op, const char *fmt, ...) {
    if (r->failure[0]) return;
    int n = snprintf(r->failure, sizeof r->failure, "step %d (%s): ", step, op);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->failure + n, sizeof r->failure - (size_t)n, fmt, ap);
    va_end(ap);
}

static peerreg_registry **handle_slot(struct run *r, const char *name, int create) {
    for (int i = 0; i < MAX_HANDLES; i++) {
        if (r->names[i] && strcmp(r->names[i], name) == 0) return &r->handles[i];
    }
    if (!create) return NULL;
    for (int i = 0; i < MAX_HANDLES; i++) {
        if (!r->names[i]) { r->names[i] = name; return &r->handles[i]; }
    }
    return NULL;
}

static const char *str(const cJSON *step, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger) { free(buf); buf = NULL; break; }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[len] = 0;
    return buf;
}

static int write_file(const char *path, const char *text, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) return -1;
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    return close(fd) == 0 && ok ? 0 : -1;
}

/* Runs one step: its result code (or 1 for a runner error, with *why set); *out the JSON given. */
static int perform(struct run *r, const cJSON *step, char **out, peerreg_error **err, const char **why) {
    const char *op = str(step, "op");
    const char *name = str(step, "handle") ? str(step, "handle") : "a";
    const char *id = str(step, "id") ? str(step, "id") : "";
    *out = NULL;
    *err = NULL;
    if (strcmp(op, "open") == 0) {
        peerreg_registry **slot = handle_slot(r, name, 1);
        if (!slot) { *why = "too many handles"; return 1; }
        return peerreg_open(slot, r->path, err);
    }
    if (strcmp(op, "clock") == 0) {
        char text[32], tmp[4300];
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(step, "ms");
        snprintf(text, sizeof text, "%.0f", cJSON_IsNumber(ms) ? ms->valuedouble : 0.0);
        snprintf(tmp, sizeof tmp, "%s.tmp", clock_file);
        if (write_file(tmp, text, 0600) != 0 || rename(tmp, clock_file) != 0) { *why = "cannot set the clock"; return 1; }
        return PEERREG_OK;
    }
    if (strcmp(op, "read_file") == 0) {
        *out = read_file(r->path);
        if (!*out) { *why = "cannot read the registry file"; return 1; }
        return PEERREG_OK;
    }
    peerreg_registry **slot = handle_slot(r, name, 0);
    if (!slot) { *why = "no such handle"; return 1; }
    peerreg_registry *reg = *slot;
    if (strcmp(op, "register") == 0) {
        const char *text = str(step, "json");
        char *printed = text ? NULL : cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(step, "entry"));
        int rc = peerreg_register(reg, text ? text : printed, out, err);
        cJSON_free(printed);
        return rc;
    }
    if (strcmp(op, "get") == 0) return peerreg_get(reg, id, out, err);
    if (strcmp(op, "list") == 0 || strcmp(op, "mark") == 0) {
        const cJSON *filter = cJSON_GetObjectItemCaseSensitive(step, "filter");
        char *printed = filter ? cJSON_PrintUnformatted(filter) : NULL;
        const char *text = str(step, "filter_json") ? str(step, "filter_json") : printed;
        int rc = peerreg_list(reg, text, out, err);
        cJSON_free(printed);
        return rc;
    }
    if (strcmp(op, "resolve") == 0) {
        const char *kind = str(step, "kind");
        int k = strcmp(kind, "tool") == 0 ? PEERREG_TOOL : strcmp(kind, "resource") == 0 ? PEERREG_RESOURCE
              : strcmp(kind, "prompt") == 0 ? PEERREG_PROMPT : 0;
        if (!k) { *why = "unknown kind"; return 1; }
        return peerreg_resolve(reg, k, str(step, "name"), out, err);
    }
    if (strcmp(op, "set_health") == 0) {
        static const char *names[] = {"UNKNOWN", "HEALTHY", "DEGRADED", "DOWN"};
        const char *status = str(step, "status");
        for (int s = 0; s < 4; s++) {
            if (status && strcmp(status, names[s]) == 0) return peerreg_set_health(reg, id, s, str(step, "message"), err);
        }
        *why = "unknown status";
        return 1;
    }
    if (strcmp(op, "heartbeat") == 0) return peerreg_heartbeat(reg, id, err);
    if (strcmp(op, "unregister") == 0) return peerreg_unregister(reg, id, err);
    if (strcmp(op, "prune") == 0) {
        int removed = -1;
        int rc = peerreg_prune(reg, &removed, err);
        if (rc == PEERREG_OK && asprintf(out, "%d", removed) < 0) *out = NULL;
        return rc;
    }
    if (strcmp(op, "close") == 0) {
        peerreg_close(reg);
        *slot = NULL;
        return PEERREG_OK;
    }
    *why = "unknown op";
    return 1;
}

static void verify(struct run *r, int index, const cJSON *step, const char *out) {
    const char *op = str(step, "op");
    cJSON *expect = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(step, "expect"), 1);
    cJSON *result = out ? cJSON_Parse(out) : NULL;
    if (expect) {
        cJSON *wrapper = cJSON_CreateArray();
        cJSON_AddItemToArray(wrapper, expect);
        substitute_in(wrapper);
        expect = cJSON_DetachItemFromArray(wrapper, 0);
        cJSON_Delete(wrapper);
    }
    if (strcmp(op, "read_file") == 0) {
        const char *text = str(step, "text");
        if (text && strcmp(text, out) != 0) fail(r, index, op, "expected the file %s, got %s", text, out);
        if (expect && !matches(expect, result)) {
            char *e = cJSON_PrintUnformatted(expect);
            fail(r, index, op, "expected file %s, got %s", e, out);
            cJSON_free(e);
        }
    } else if (expect && !matches(expect, result)) {
        char *e = cJSON_PrintUnformatted(expect);
        fail(r, index, op, "expected %s, got %s", e, out ? out : "nothing");
        cJSON_free(e);
    }
    if (strcmp(op, "mark") == 0) {
        r->mark = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(result, "generation"));
    }
    if (strcmp(op, "list") == 0) {
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(step, "ids");
        if (ids) {
            cJSON *got = cJSON_CreateArray();
            const cJSON *servers = cJSON_GetObjectItemCaseSensitive(result, "servers");
            for (const cJSON *s = servers ? servers->child : NULL; s; s = s->next) {
                cJSON_AddItemToArray(got, cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(s, "id"), 1));
            }
            if (!cJSON_Compare(ids, got, 1)) {
                char *g = cJSON_PrintUnformatted(got);
                fail(r, index, op, "expected other ids, got %s", g);
                cJSON_free(g);
            }
            cJSON_Delete(got);
        }
        const cJSON *since = cJSON_GetObjectItemCaseSensitive(step, "generation_since_mark");
        if (since) {
            long long delta = (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(result, "generation")) - r->mark;
            if (delta != (long long)since->valuedouble) fail(r, index, op, "expected generation mark+%.0f, got mark+%lld", since->valuedouble, delta);
        }
    }
    if (strcmp(op, "resolve") == 0 && str(step, "id")) {
        const char *got = str(result, "id");
        if (!got || strcmp(got, str(step, "id")) != 0) fail(r, index, op, "expected %s, got %s", str(step, "id"), got ? got : "nothing");
    }
    if (strcmp(op, "prune") == 0) {
        const cJSON *removed = cJSON_GetObjectItemCaseSensitive(step, "removed");
        if (removed && !cJSON_Compare(removed, result, 1)) fail(r, index, op, "expected %.0f removed, got %s", removed->valuedouble, out);
    }
    cJSON_Delete(expect);
    cJSON_Delete(result);
}

static int run_case(const cJSON *c, int number) {
    struct run r;
    memset(&r, 0, sizeof r);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/case-%d", temp_root, number);
    if (mkdir(dir, 0700) != 0) { perror(dir); exit(2); }
    snprintf(r.path, sizeof r.path, "%s/servers.json", dir);
    unlink(clock_file);
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(c, "file");
    if (file) {
        cJSON *copy = cJSON_Duplicate(file, 1);
        cJSON *wrapper = cJSON_CreateArray();
        cJSON_AddItemToArray(wrapper, copy);
        substitute_in(wrapper);
        char *printed = cJSON_IsString(file) ? NULL : cJSON_PrintUnformatted(cJSON_GetArrayItem(wrapper, 0));
        if (write_file(r.path, printed ? printed : file->valuestring, 0600) != 0) { perror(r.path); exit(2); }
        cJSON_free(printed);
        cJSON_Delete(wrapper);
    }
    peerreg_error *err = NULL;
    r.names[0] = "a";
    if (peerreg_open(&r.handles[0], r.path, &err) != PEERREG_OK) {
        fprintf(stderr, "open %s: %s\n", r.path, peerreg_error_message(err));
        exit(2);
    }
    const char *name = str(c, "name");
    printf("%s:", name);
    int index = 0;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(c, "steps");
    for (const cJSON *step = steps ? steps->child : NULL; step; step = step->next) {
        index++;
        const char *op = str(step, "op");
        char *out = NULL;
        const char *why = NULL;
        int rc = perform(&r, step, &out, &err, &why);
        const char *expected_error = str(step, "error");
        if (rc == 1) {
            printf(" runner-error");
            fail(&r, index, op, "%s", why);
        } else if (rc != PEERREG_OK) {
            char got[64];
            code_name(rc, got, sizeof got);
            printf(" %s", got);
            const char *message = peerreg_error_message(err);
            if (!expected_error || strcmp(expected_error, got) != 0) {
                fail(&r, index, op, "expected %s, got %s: %s", expected_error ? expected_error : "success", got, message);
            } else {
                const cJSON *words = cJSON_GetObjectItemCaseSensitive(step, "message_contains");
                for (const cJSON *w = words ? words->child : NULL; w; w = w->next) {
                    if (!strstr(message, w->valuestring)) fail(&r, index, op, "message \"%s\" does not name \"%s\"", message, w->valuestring);
                }
            }
        } else {
            printf(" ok");
            if (expected_error) fail(&r, index, op, "expected %s, got success", expected_error);
            else verify(&r, index, step, out);
        }
        if (strcmp(op, "read_file") == 0 || strcmp(op, "prune") == 0) free(out);
        else peerreg_free(out);
        peerreg_error_free(err);
        err = NULL;
    }
    for (int i = 0; i < MAX_HANDLES; i++) peerreg_close(r.handles[i]);
    printf(" => %s%s\n", r.failure[0] ? "FAIL " : "pass", r.failure);
    return r.failure[0] != 0;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s cases.json\n", argv[0]); return 2; }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(temp_root, sizeof temp_root, "%s/peerreg-conformance-c-XXXXXX", tmp);
    if (!mkdtemp(temp_root)) { perror("mkdtemp"); return 2; }
    snprintf(clock_file, sizeof clock_file, "%s/clock", temp_root);
    setenv("PEER_REGISTRY_TEST_CLOCK_FILE", clock_file, 1); /* before the library first reads the time */
    char *text = read_file(argv[1]);
    cJSON *doc = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases");
    if (!cJSON_IsArray(cases)) { fprintf(stderr, "%s: no cases\n", argv[1]); return 2; }
    int failed = 0, count = 0;
    for (const cJSON *c = cases->child; c; c = c->next) failed += run_case(c, count++);
    printf("%d cases, %d failed\n", count, failed);
    cJSON_Delete(doc);
    char command[4400];
    snprintf(command, sizeof command, "rm -rf '%s'", temp_root);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", temp_root);
    return failed ? 1 : 0;
}
