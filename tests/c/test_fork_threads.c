/* A child forked after the library was used, writing from two threads at once.
 *
 * Usage: test_fork_threads <dir> <children> <writes per thread>
 *
 * The parent opens a registry, writes through it and closes it, so its main thread has taken
 * the library's in-process locks. Each child (fork without exec) then opens its own handle and
 * writes from its main thread and from a second thread at the same time, on one handle: the two
 * contend for the same in-process locks. Swift's Synchronization.Mutex cached the parent's
 * thread id in the forked main thread, and its first contended lock trapped (SIGILL/SIGTRAP),
 * killing the child; every child must now finish all its writes and exit 0, and the file must
 * hold exactly the entries the children kept. Run with a generous lock timeout
 * (PEER_REGISTRY_LOCK_TIMEOUT_MS): on a loaded machine flock's unfairness (issue 15) can make one
 * writer wait longer than the 5 s default, which is not what this test is about. */
#define _GNU_SOURCE
#include "peer_registry.h"
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *path;
static int writes;
static peerreg_registry *shared;

static int fail(const char *what, peerreg_error *err) {
    fprintf(stderr, "test_fork_threads[%d]: %s: %s\n", (int)getpid(), what, err ? peerreg_error_message(err) : "failed");
    peerreg_error_free(err);
    return 1;
}

/* register id-t-i for every i, unregister the odd ones: lease entries, so each handle also runs
 * its anti-entropy thread, a third user of the locks. */
static int write_loop(const char *tag) {
    for (int i = 0; i < writes; i++) {
        char id[64], json[256];
        snprintf(id, sizeof id, "%s-%d", tag, i);
        snprintf(json, sizeof json, "{\"id\":\"%s\",\"url\":\"http://127.0.0.1:%d/mcp\"}", id, 20000 + i);
        peerreg_error *err = NULL;
        if (peerreg_register(shared, json, NULL, &err)) return fail("register", err);
        char *out = NULL;
        if (peerreg_list(shared, NULL, &out, &err)) return fail("list", err);
        peerreg_free(out);
        if (i % 2 == 1 && peerreg_unregister(shared, id, &err)) return fail("unregister", err);
    }
    return 0;
}

static void *second_thread(void *arg) {
    return (void *)(intptr_t)write_loop((const char *)arg);
}

static int child(int k) {
    peerreg_error *err = NULL;
    if (peerreg_open(&shared, path, &err)) return fail("open in child", err);
    char main_tag[32], other_tag[32];
    snprintf(main_tag, sizeof main_tag, "c%d-main", k);
    snprintf(other_tag, sizeof other_tag, "c%d-thread", k);
    pthread_t t;
    if (pthread_create(&t, NULL, second_thread, other_tag)) return fail("pthread_create", NULL);
    int rc = write_loop(main_tag);
    void *trc = NULL;
    pthread_join(t, &trc);
    /* The entries stay while the handle is open; report them, then leave without closing (the
     * parent counts them while this child waits, then lets it exit). */
    return rc || (intptr_t)trc;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: test_fork_threads <dir> <children> <writes per thread>\n");
        return 2;
    }
    static char file[4096];
    snprintf(file, sizeof file, "%s/servers.json", argv[1]);
    path = file;
    int children = atoi(argv[2]);
    writes = atoi(argv[3]);

    peerreg_registry *r = NULL;
    peerreg_error *err = NULL;
    if (peerreg_open(&r, path, &err)) return fail("open", err);
    if (peerreg_register(r, "{\"id\":\"parent-static\",\"url\":\"http://127.0.0.1:1/mcp\",\"liveness\":\"none\"}", NULL, &err))
        return fail("register in parent", err);
    peerreg_close(r);

    int passed = 0, failed = 0;
    int done[2];
    if (pipe(done)) return 1;
    pid_t *pids = calloc((size_t)children, sizeof(pid_t));
    for (int k = 0; k < children; k++) {
        pids[k] = fork();
        if (pids[k] < 0) return 1;
        if (pids[k] == 0) {
            close(done[1]);
            int rc = child(k);
            /* Keep the handle (and so the leases) until the parent has checked the file; a
             * child that failed leaves at once, so the parent sees it end. */
            char c;
            if (rc == 0 && read(done[0], &c, 1) < 0) rc = 1;
            _exit(rc);
        }
    }
    close(done[0]);
    /* Wait until every child has written everything: the file then lists each child's kept
     * entries (writes / 2 per thread) — or a child died, which waitpid with WNOHANG reports. */
    int expected = children * 2 * (writes / 2) + 1;
    for (int waited = 0;; waited++) {
        if (peerreg_open(&r, path, &err)) return fail("open to check", err);
        char *out = NULL;
        if (peerreg_list(r, NULL, &out, &err)) return fail("list", err);
        int n = 0;
        for (const char *p = out; (p = strstr(p, "\"id\":")); p++) n++;
        peerreg_free(out);
        peerreg_close(r);
        if (n == expected) break;
        int dead = 0;
        for (int k = 0; k < children; k++) {
            int status;
            if (pids[k] && waitpid(pids[k], &status, WNOHANG) == pids[k]) {
                fprintf(stderr, "child %d ended early: %s %d\n", k, WIFSIGNALED(status) ? "signal" : "exit",
                        WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                pids[k] = 0;
                dead++;
                failed++;
            }
        }
        if (dead || waited > 1200) {
            fprintf(stderr, "the file lists %d entries, expected %d\n", n, expected);
            if (!dead) failed++;
            break;
        }
        usleep(50000);
    }
    close(done[1]);
    for (int k = 0; k < children; k++) {
        int status;
        if (!pids[k]) continue;
        waitpid(pids[k], &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            passed++;
        } else {
            fprintf(stderr, "child %d: %s %d\n", k, WIFSIGNALED(status) ? "killed by signal" : "exit status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            failed++;
        }
    }
    printf("fork+threads: %d children passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
