/*
 * peer_registry.h — the C ABI of peer-registry (libpeerregistry.so.0).
 *
 * peer-registry lets local MCP servers announce themselves in one shared registry file
 * (default: $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json) and lets clients find them.
 * The library is the only code that reads, locks, writes, validates and prunes that file.
 * Format and protocol: docs/FORMAT.md. Stability promise, memory rules, linking: docs/ABI.md.
 *
 * THREADS
 *   A peerreg_registry handle is thread-safe: any number of threads may share one handle, and
 *   peerreg_close() may be called while other threads are inside calls on it (it waits for
 *   them; later calls return PEERREG_ECLOSED). A peerreg_watch serves one peerreg_watch_next
 *   at a time (calls from several threads are serialised); its fd may be polled from anywhere,
 *   and peerreg_watch_close() from another thread wakes a blocked peerreg_watch_next, which
 *   returns PEERREG_ECLOSED. peerreg_version*, peerreg_errstr and the peerreg_error accessors are pure.
 *
 * CONTENTION
 *   When several processes write at once, a register, heartbeat or unregister that finds the
 *   lock taken is handed to the process holding it, whose one durable write carries every such
 *   change (group commit, docs/FORMAT.md). Each call still returns only once its own change is
 *   durable, with its own result; PEER_REGISTRY_LOCK_TIMEOUT_MS still bounds the wait.
 *
 * ERRORS
 *   Every int result is a PEERREG_* code (a peerreg_code): PEERREG_OK (0) on success, a negative code on
 *   failure. Functions take a last argument `peerreg_error **err`; it may be NULL. When it is
 *   not NULL and the call fails, *err receives a newly allocated error (code + message) that
 *   the caller frees with peerreg_error_free(); on success *err is set to NULL. There is no
 *   thread-local "last error". No function aborts the process on bad input: NULL pointers,
 *   invalid UTF-8, malformed or oversized JSON and unknown enum values return PEERREG_EINVAL
 *   or PEERREG_ELIMIT, and change nothing.
 *
 * MEMORY
 *   Every char* the library hands out (the out_* JSON strings) is allocated by the library and
 *   must be freed with peerreg_free() — never with the caller's free(). Strings passed in are
 *   borrowed for the duration of the call only. Out pointers are set to NULL on failure.
 *
 * FORK
 *   A handle belongs to the process that opened it. In a forked child the library closes its
 *   inherited copies of the parent's lease descriptors (so the parent's death is still seen),
 *   and every call on an inherited handle returns PEERREG_ECLOSED; peerreg_close() on it only
 *   frees memory — it never unregisters the parent's entries. Open a new handle in the child.
 */
#ifndef PEER_REGISTRY_H
#define PEER_REGISTRY_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define PEERREG_API __attribute__((visibility("default")))
#else
#  define PEERREG_API
#endif

/* The version of this header. Compare PEERREG_VERSION_NUMBER with peerreg_version_number()
 * to check that the library you loaded is the one you compiled against. */
#define PEERREG_VERSION "0.2.0"
#define PEERREG_VERSION_NUMBER 2000   /* major*1000000 + minor*1000 + patch */

typedef struct peerreg_registry peerreg_registry;   /* opaque; thread-safe */
typedef struct peerreg_watch    peerreg_watch;      /* opaque; one thread at a time */
typedef struct peerreg_error    peerreg_error;      /* owned error: code + message */

/* The three sets of constants below are named enum types (peerreg_code, peerreg_kind,
 * peerreg_health), so that a variable, a struct field or a switch can say which set its value
 * belongs to, and debuggers show names. Every function still takes and returns them as `int`,
 * as it always has: a C enum's size is the compiler's choice while int's is fixed, so changing
 * the signatures could change the ABI; these names change nothing in it. */

/* Result codes. Values are stable across all 0.x and 1.x releases. */
typedef enum peerreg_code {
    PEERREG_OK         =   0,
    PEERREG_EINVAL     =  -1,  /* bad argument: NULL, invalid UTF-8, malformed JSON, bad field */
    PEERREG_ENOTFOUND  =  -2,  /* no live entry with that id / nothing resolves that name */
    PEERREG_EEXISTS    =  -3,  /* the id is held by another live registrant */
    PEERREG_ECORRUPT   =  -4,  /* the registry file does not parse; message has path + position */
    PEERREG_EIO        =  -5,  /* a system call failed; message names it and errno */
    PEERREG_EPERM      =  -6,  /* unsafe ownership/permissions/symlink/hard link; message says the fix */
    PEERREG_ETIMEOUT   =  -7,  /* the file lock was not obtained in time (5 s, or $PEER_REGISTRY_LOCK_TIMEOUT_MS);
                                  the message names the pid the last holder recorded, if any;
                                  from peerreg_watch_next: nothing changed in time */
    PEERREG_EAMBIGUOUS =  -8,  /* several equally healthy servers declare the name; message lists them */
    PEERREG_ELIMIT     =  -9,  /* a documented size limit was exceeded */
    PEERREG_ECLOSED    = -10   /* the handle was closed, or was inherited across fork() */
} peerreg_code;

/* Capability kinds for peerreg_resolve(). */
typedef enum peerreg_kind { PEERREG_TOOL = 1, PEERREG_RESOURCE = 2, PEERREG_PROMPT = 3 } peerreg_kind;

/* Health states for peerreg_set_health(). DOWN servers never resolve. */
typedef enum peerreg_health {
    PEERREG_UNKNOWN = 0, PEERREG_HEALTHY = 1, PEERREG_DEGRADED = 2, PEERREG_DOWN = 3
} peerreg_health;

/* ---- version and error strings ----------------------------------------------------------- */

/* "0.2.0": the library's version. Static string; do not free. */
PEERREG_API const char *peerreg_version(void);

/* The library's version as major*1000000 + minor*1000 + patch. */
PEERREG_API int peerreg_version_number(void);

/* A static, human-readable name for a result code, e.g. "PEERREG_ENOTFOUND: not found".
 * Unknown codes give "PEERREG_UNKNOWN_CODE". Never NULL; do not free. */
PEERREG_API const char *peerreg_errstr(int code);

/* ---- opening and closing ----------------------------------------------------------------- */

/* Opens the registry whose file is `path` (NULL: $PEER_REGISTRY_PATH, else
 * ~/.peer-plan/servers.json). Creates the directory (0700) and the lock file if missing;
 * refuses (PEERREG_EPERM) a directory or file owned by another user or writable by group or
 * others, a symlinked file, or one with more than one hard link. A corrupt file does not fail
 * the open: reads and writes report PEERREG_ECORRUPT until it is repaired.
 * On success *out receives a handle to release with peerreg_close(). */
PEERREG_API int peerreg_open(peerreg_registry **out, const char *path, peerreg_error **err);

/* Unregisters every entry this handle registered with "lease" liveness, releases its leases
 * and frees the handle, after waiting for calls other threads are making on it (a write that
 * waits for the file lock finishes within the lock timeout). NULL and an already-closed handle
 * are no-ops. Handles are looked up
 * in a table of live handles (never dereferenced) and a handle value is never reused, so every
 * later call with a closed handle returns PEERREG_ECLOSED instead of touching freed memory. Watches opened on the handle keep
 * working until they are closed. */
PEERREG_API void peerreg_close(peerreg_registry *reg);

/* ---- writing ------------------------------------------------------------------------------- */

/* Registers one server, replacing an entry with the same id when this handle holds its lease or
 * it is not a live "lease" entry (a "ttl", "pid" or static entry is replaced by whoever
 * registers its id again).
 * entry_json is one entry object as in docs/FORMAT.md; "id" and "url" are required,
 * everything else has defaults: liveness "lease", pid = the caller's, startedAt = now,
 * health UNKNOWN, transport from the URL scheme. Unknown fields are kept.
 * Fails with PEERREG_EEXISTS when another live registrant holds the id with a lease, and with
 * PEERREG_ELIMIT when the entry could not be read back from the file by the library's own
 * reader (e.g. metadata nested deeper than the file allows). While this handle holds an
 * entry's lease it is authoritative for it: if a tool that bypasses the library removes or
 * changes the entry, the handle writes it back (docs/FORMAT.md, "Anti-entropy").
 * On success, if out_entry_json is not NULL it receives the stored entry as JSON
 * (free with peerreg_free). The write is durable when the call returns. */
PEERREG_API int peerreg_register(peerreg_registry *reg, const char *entry_json,
                                 char **out_entry_json, peerreg_error **err);

/* Removes the entry `id` and, if this handle held its lease, releases it. Any "ttl", "pid",
 * static or dead entry may be removed; a "lease" entry whose lease another live handle or
 * process holds is refused with PEERREG_EPERM naming the holder's pid (stop that process).
 * PEERREG_ENOTFOUND when there is no such entry. Durable when the call returns. */
PEERREG_API int peerreg_unregister(peerreg_registry *reg, const char *id, peerreg_error **err);

/* Records the health reported for `id`: status is PEERREG_UNKNOWN..PEERREG_DOWN, message may
 * be NULL. Sets health.lastCheck to now. PEERREG_ENOTFOUND when there is no live entry. */
PEERREG_API int peerreg_set_health(peerreg_registry *reg, const char *id, int status,
                                   const char *message, peerreg_error **err);

/* Sets lastSeen of `id` to now; keeps "ttl" entries alive. Works for every liveness mode. */
PEERREG_API int peerreg_heartbeat(peerreg_registry *reg, const char *id, peerreg_error **err);

/* Removes every dead entry and orphaned lease file now. out_removed (may be NULL) receives
 * the number of entries removed. Writers prune anyway; this is for tools and tests. */
PEERREG_API int peerreg_prune(peerreg_registry *reg, int *out_removed, peerreg_error **err);

/* Actively probes the live entry `id` by its transport — for "http" the MCP handshake
 * (initialize, notifications/initialized, ping in one Mcp-Session-Id session, then DELETE of it),
 * for "sse" the same over the legacy SSE transport, a TCP connect for "ws", "https" and "wss";
 * only correct JSON-RPC results count (docs/FORMAT.md, "Health") — and records what it found: a success
 * makes the entry HEALTHY; consecutive failures (health.consecutiveFailures) make it DEGRADED
 * after 1 and DOWN after 3. health.message and health.lastCheck say what was seen. Blocks up to
 * timeout_ms (<= 0: 2000) plus one write. If out_entry_json is not NULL it receives the entry as
 * stored after the probe (free with peerreg_free). PEERREG_ENOTFOUND when there is no live entry.
 * A failed probe is not an error: it is recorded, and the call returns PEERREG_OK. */
PEERREG_API int peerreg_probe(peerreg_registry *reg, const char *id, int timeout_ms,
                              char **out_entry_json, peerreg_error **err);

/* ---- reading (no lock; re-parses only when the file changed) ------------------------------ */

/* The live entry `id` as JSON in *out_entry_json (free with peerreg_free).
 * PEERREG_ENOTFOUND when missing or dead. */
PEERREG_API int peerreg_get(peerreg_registry *reg, const char *id, char **out_entry_json,
                            peerreg_error **err);

/* The live entries as {"generation":N,"servers":[...]} in *out_json (free with peerreg_free).
 * filter_json may be NULL (all live entries) or an object with any of:
 *   "healthy": true|false   health.status is (or is not) HEALTHY
 *   "status": "DEGRADED"    health.status equals this
 *   "transport": "http"     transport equals this
 *   "tool" | "prompt": name the entry declares that tool / prompt
 *   "resource": uri         the entry declares a resource prefix of (or equal to) uri
 *   "scope": "cluster"      (0.2.0) also the other machines' entries, mirrored by the cluster
 *                           agent (docs/CLUSTER.md), after the local ones; each has "node", and
 *                           "stale": true when this machine's agent lost etcd or is not running.
 *                           "local" (the default): this machine's registry only.
 * Unknown filter keys are PEERREG_EINVAL. */
PEERREG_API int peerreg_list(peerreg_registry *reg, const char *filter_json, char **out_json,
                             peerreg_error **err);

/* The one live server that handles `name`, as JSON in *out_entry_json (free with peerreg_free).
 * kind is PEERREG_TOOL, PEERREG_RESOURCE or PEERREG_PROMPT.
 * Tools and prompts: "server.tool" is qualified (split at the first dot); a bare name goes to
 * the one live server declaring it, preferring HEALTHY over DEGRADED over UNKNOWN; a tie is
 * PEERREG_EAMBIGUOUS (the message lists the candidates). Resources: an exact declaration wins,
 * else the longest declared prefix. DOWN servers never resolve. PEERREG_ENOTFOUND otherwise. */
PEERREG_API int peerreg_resolve(peerreg_registry *reg, int kind, const char *name,
                                char **out_entry_json, peerreg_error **err);

/* Scopes for peerreg_resolve_scoped() (0.2.0). */
enum { PEERREG_SCOPE_LOCAL = 0, PEERREG_SCOPE_CLUSTER = 1 };

/* peerreg_resolve() within a scope (0.2.0). PEERREG_SCOPE_LOCAL is peerreg_resolve();
 * PEERREG_SCOPE_CLUSTER also considers the other machines' entries of the cluster view
 * (docs/CLUSTER.md): health first, then, at equal health, a local server over a remote one and
 * a fresh remote one over a stale one; "server.tool" names a local id first. The entry returned
 * for a remote server carries "node". Any other scope is PEERREG_EINVAL. */
PEERREG_API int peerreg_resolve_scoped(peerreg_registry *reg, int kind, const char *name, int scope,
                                       char **out_entry_json, peerreg_error **err);

/* ---- watching ------------------------------------------------------------------------------ */

/* Opens a watch on the registry `reg` (the watch keeps what it needs; reg may be closed
 * first). *out receives a handle to release with peerreg_watch_close(). Events are diffs
 * against the last state this watch saw, so bursts of writes are coalesced, never missed.
 * The first event after opening is not a replay: the current state is the baseline. */
PEERREG_API int peerreg_watch_open(peerreg_watch **out, peerreg_registry *reg, peerreg_error **err);

/* peerreg_watch_open() for the entries a peerreg_list() filter selects (0.2.0; NULL: all, as
 * peerreg_watch_open). With {"scope":"cluster"} the other machines' entries are watched too:
 * each is identified by node and id, so the same id on two nodes is two entries. An entry that
 * stops matching the filter is "removed". A bad filter is PEERREG_EINVAL. */
PEERREG_API int peerreg_watch_open_filtered(peerreg_watch **out, peerreg_registry *reg,
                                            const char *filter_json, peerreg_error **err);

/* A file descriptor that is readable when an event may be pending: poll/select/epoll it, then
 * call peerreg_watch_next(w, 0, ...). Owned by the watch; do not close or read it.
 * -1 when w is NULL or closed. */
PEERREG_API int peerreg_watch_fd(const peerreg_watch *w);

/* Waits up to timeout_ms (0: do not wait; -1: forever) for the next change and stores it in
 * *out_event_json as {"generation":N,"added":[...],"removed":[...],"changed":[...]} with whole
 * entries (for "removed", the last entry seen). Free with peerreg_free.
 * PEERREG_ETIMEOUT when nothing changed in time (*out_event_json is NULL). */
PEERREG_API int peerreg_watch_next(peerreg_watch *w, int timeout_ms, char **out_event_json,
                                   peerreg_error **err);

/* Closes the watch and its fd, waking a peerreg_watch_next blocked in another thread (it
 * returns PEERREG_ECLOSED). NULL and an already-closed watch are no-ops. */
PEERREG_API void peerreg_watch_close(peerreg_watch *w);

/* ---- memory and errors --------------------------------------------------------------------- */

/* Frees a string the library handed out. NULL is a no-op. */
PEERREG_API void peerreg_free(void *p);

/* The PEERREG_* code of e (PEERREG_OK when e is NULL). */
PEERREG_API int peerreg_error_code(const peerreg_error *e);

/* The message of e, owned by e and valid until peerreg_error_free(e). "" when e is NULL. */
PEERREG_API const char *peerreg_error_message(const peerreg_error *e);

/* Frees e. NULL is a no-op. */
PEERREG_API void peerreg_error_free(peerreg_error *e);

#ifdef __cplusplus
}
#endif

#endif /* PEER_REGISTRY_H */
