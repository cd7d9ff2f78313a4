/* Writes a registry of N static entries (the benchmark entry shape) through the library.
 * Usage: seed_registry <path> <entries> */
#include "bench_common.h"
#include "peer_registry.h"

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    peerreg_registry *r = NULL;
    peerreg_error *err = NULL;
    char json[1024], id[32];
    if (peerreg_open(&r, argv[1], &err)) { fprintf(stderr, "seed_registry: %s\n", peerreg_error_message(err)); return 1; }
    for (int i = 0, n = atoi(argv[2]); i < n; i++) {
        snprintf(id, sizeof id, "other-%d", i);
        bench_entry_json(json, sizeof json, id, 10000 + i, "none", NULL);
        if (peerreg_register(r, json, NULL, &err)) { fprintf(stderr, "seed_registry: %s\n", peerreg_error_message(err)); return 1; }
    }
    peerreg_close(r);
    return 0;
}
