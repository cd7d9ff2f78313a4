/* A program a user writes against the installed library: built with
 *   cc consumer.c $(pkg-config --cflags --libs peerregistry)
 * it registers a server, lists it, sees it in a watch event, unregisters it and sees it go.
 *   ./consumer REGISTRY_PATH ID      (prints one line per step; exit 0 when all of them held)
 */
#include <peer_registry.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *step, int rc, peerreg_error *err) {
    fprintf(stderr, "consumer: %s failed: %s (%s)\n", step, peerreg_errstr(rc),
            err ? peerreg_error_message(err) : "no message");
    peerreg_error_free(err);
    return 1;
}

/* Waits up to 5 s for an event whose `key` array mentions the entry `id`. */
static int wait_for_event(peerreg_watch *w, const char *key, const char *id) {
    char needle[200];
    snprintf(needle, sizeof needle, "\"id\":\"%s\"", id);
    for (int i = 0; i < 50; i++) {
        char *event = NULL;
        peerreg_error *err = NULL;
        int rc = peerreg_watch_next(w, 100, &event, &err);
        if (rc == PEERREG_ETIMEOUT) { peerreg_error_free(err); continue; }
        if (rc != PEERREG_OK) return fail("peerreg_watch_next", rc, err);
        /* {"generation":N,"added":[...],"removed":[...],"changed":[...]}: look in `key` only. */
        char *array = strstr(event, key);
        char *end = array ? strstr(array, "]") : NULL;
        int found = 0;
        if (array && end) {
            char *hit = strstr(array, needle);
            found = hit && hit < end;
        }
        peerreg_free(event);
        if (found) return 0;
    }
    fprintf(stderr, "consumer: no watch event with %s in %s within 5 s\n", id, key);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: consumer REGISTRY_PATH ID\n"); return 2; }
    const char *path = argv[1], *id = argv[2];
    if (peerreg_version_number() / 1000 != PEERREG_VERSION_NUMBER / 1000) {
        fprintf(stderr, "consumer: header %s but library %s\n", PEERREG_VERSION, peerreg_version());
        return 1;
    }
    printf("library %s\n", peerreg_version());

    peerreg_registry *reg = NULL;
    peerreg_error *err = NULL;
    int rc = peerreg_open(&reg, path, &err);
    if (rc) return fail("peerreg_open", rc, err);
    peerreg_watch *w = NULL;
    if ((rc = peerreg_watch_open(&w, reg, &err))) return fail("peerreg_watch_open", rc, err);

    char entry[512];
    snprintf(entry, sizeof entry,
             "{\"id\":\"%s\",\"url\":\"http://127.0.0.1:8931/mcp\",\"capabilities\":{\"tools\":[\"cTool\"]}}", id);
    char *stored = NULL;
    if ((rc = peerreg_register(reg, entry, &stored, &err))) return fail("peerreg_register", rc, err);
    printf("registered %s\n", stored);
    peerreg_free(stored);

    char *listing = NULL;
    if ((rc = peerreg_list(reg, "{\"tool\":\"cTool\"}", &listing, &err))) return fail("peerreg_list", rc, err);
    char needle[200];
    snprintf(needle, sizeof needle, "\"id\":\"%s\"", id);
    int listed = strstr(listing, needle) != NULL;
    printf("listed %s\n", listing);
    peerreg_free(listing);
    if (!listed) { fprintf(stderr, "consumer: %s not in the listing\n", id); return 1; }

    if (wait_for_event(w, "\"added\"", id)) return 1;
    printf("watch: added %s\n", id);

    if ((rc = peerreg_unregister(reg, id, &err))) return fail("peerreg_unregister", rc, err);
    if (wait_for_event(w, "\"removed\"", id)) return 1;
    printf("watch: removed %s\n", id);

    char *gone = NULL;
    rc = peerreg_get(reg, id, &gone, &err);
    if (rc != PEERREG_ENOTFOUND) { peerreg_free(gone); return fail("peerreg_get after unregister (want ENOTFOUND)", rc, err); }
    peerreg_error_free(err);
    printf("unregistered %s\n", id);

    peerreg_watch_close(w);
    peerreg_close(reg);
    return 0;
}
