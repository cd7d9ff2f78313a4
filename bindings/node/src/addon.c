/*
 * addon.c — the N-API skin of libpeerregistry for Node.js.
 *
 * The library is not linked at build time: loadLibrary() dlopen()s the path that the JS side
 * chose (explicit argument, PEER_REGISTRY_LIB, the package's copy, the system loader) and
 * resolves every peerreg_* symbol with dlsym(). Each peerreg_* signature is taken from the
 * package's copy of the header (include/peer_registry.h beside this directory, kept identical
 * to the repository's by a test) with __typeof__, so a change in the header breaks this build
 * instead of silently calling a function with the wrong arguments.
 *
 * What this file adds to the C ABI, and nothing more:
 *   - handles as JS externals with finalizers (a handle the program forgot to close is closed
 *     when it is garbage collected, or when the environment is torn down);
 *   - a closed handle is still passed to the library, which answers PEERREG_ECLOSED (handles
 *     are ids in a table, never dereferenced nor reused: see peerreg_close in the header);
 *   - library errors become instances of the JS error class registered with init();
 *   - callAsync runs any call (the writes, which wait for the file lock; probe, which waits on
 *     the network; the reads) on the libuv thread pool and settles a promise (handles are
 *     thread-safe); the synchronous functions call the library on the loop's thread;
 *   - watch fds are polled by libuv on the env's loop (uv_poll_t): no threads.
 *
 * Every N-API call is wrapped in NODE_API_CALL (or a variant for void contexts), which turns a
 * failing status into a pending JS exception unless one is already pending.
 */
#define _GNU_SOURCE /* dladdr */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer_registry.h"

/* ---- N-API call checking ------------------------------------------------------------------- */

static void throw_napi_failure(napi_env env, const char *call, napi_status status) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return;
    const napi_extended_error_info *info = NULL;
    const char *why = NULL;
    if (napi_get_last_error_info(env, &info) == napi_ok && info && info->error_message)
        why = info->error_message;
    char msg[512];
    snprintf(msg, sizeof msg, "peer-registry addon: %s failed (napi_status %d%s%s)", call,
             (int)status, why ? ": " : "", why ? why : "");
    napi_throw_error(env, "ERR_PEERREG_NAPI", msg);
}

/* For napi_callback functions: on failure, leave an exception pending and return NULL. */
#define NODE_API_CALL(env, call)                                                               \
    do {                                                                                       \
        napi_status napi_status_ = (call);                                                     \
        if (napi_status_ != napi_ok) {                                                         \
            throw_napi_failure((env), #call, napi_status_);                                    \
            return NULL;                                                                       \
        }                                                                                      \
    } while (0)

/* Same, for helpers that return a bool (false: an exception is pending). */
#define NODE_API_CALL_BOOL(env, call)                                                          \
    do {                                                                                       \
        napi_status napi_status_ = (call);                                                     \
        if (napi_status_ != napi_ok) {                                                         \
            throw_napi_failure((env), #call, napi_status_);                                    \
            return false;                                                                      \
        }                                                                                      \
    } while (0)

/* For contexts with no JS caller to throw to (uv callbacks): a failure there means the env is
 * going away; there is nothing better to do than stop. */
#define NODE_API_CALL_VOID(env, call)                                                          \
    do {                                                                                       \
        napi_status napi_status_ = (call);                                                     \
        if (napi_status_ != napi_ok) {                                                         \
            (void)(env);                                                                       \
            return;                                                                            \
        }                                                                                      \
    } while (0)

/* Same, for helpers returning bool, without throwing (uv callbacks). */
#define NODE_API_CALL_QUIET(env, call)                                                         \
    do {                                                                                       \
        napi_status napi_status_ = (call);                                                     \
        if (napi_status_ != napi_ok) {                                                         \
            (void)(env);                                                                       \
            return false;                                                                      \
        }                                                                                      \
    } while (0)

/* Releasing (finalizers, cleanup hooks, close): every step is attempted even if one fails,
 * since each frees something different; a failure can only mean the env is being torn down,
 * when Node releases what is left itself. */
#define NODE_API_CALL_RELEASE(env, call) ((void)(env), (void)(call))

/* ---- the dynamically loaded library ---------------------------------------------------------- */

#define PEERREG_SYMBOLS(X)                                                                     \
    X(version) X(version_number) X(errstr) X(open) X(close) X(register) X(unregister)          \
    X(get) X(list) X(resolve) X(set_health) X(heartbeat) X(prune) X(probe) X(watch_open)       \
    X(watch_fd) X(watch_next) X(watch_close) X(free) X(error_code) X(error_message) X(error_free)

/* Added in 0.2.0 and looked up optionally: NULL when the library lacks them, so that such a
 * library still serves everything else; the calls that need them say so (require_symbol). */
#define PEERREG_OPTIONAL_SYMBOLS(X) X(resolve_scoped) X(watch_open_filtered)

typedef struct {
#define X(name) __typeof__(peerreg_##name) *name##_; /* `register` is a C keyword */
    PEERREG_SYMBOLS(X)
    PEERREG_OPTIONAL_SYMBOLS(X)
#undef X
} peerreg_api;

static peerreg_api lib;                 /* written once, under load_mutex, before `loaded` */
static void *lib_handle;
static char lib_path[PATH_MAX];
static int loaded;                      /* read with __atomic_load_n(ACQUIRE) */
static pthread_mutex_t load_mutex = PTHREAD_MUTEX_INITIALIZER;

static bool library_loaded(void) { return __atomic_load_n(&loaded, __ATOMIC_ACQUIRE) != 0; }

/* ---- per-env state ------------------------------------------------------------------------- */

typedef struct {
    napi_ref error_class; /* PeerRegistryError from index.js (weakly held by nobody else) */
} addon_state;

static addon_state *get_state(napi_env env) {
    void *data = NULL;
    if (napi_get_instance_data(env, &data) != napi_ok) return NULL;
    return data;
}

/* Handles cross into JS as externals tagged with their type, so a watch can never be passed
 * where a registry is expected (and arbitrary externals from other addons are rejected). */
static const napi_type_tag registry_tag = {0x7065657272656731ULL, 0x7265676973747279ULL};
static const napi_type_tag watch_tag = {0x7065657272656731ULL, 0x7761746368000000ULL};

/* ---- errors ---------------------------------------------------------------------------------- */

static const char *code_name(int code) {
    switch (code) {
    case PEERREG_OK: return "PEERREG_OK";
    case PEERREG_EINVAL: return "PEERREG_EINVAL";
    case PEERREG_ENOTFOUND: return "PEERREG_ENOTFOUND";
    case PEERREG_EEXISTS: return "PEERREG_EEXISTS";
    case PEERREG_ECORRUPT: return "PEERREG_ECORRUPT";
    case PEERREG_EIO: return "PEERREG_EIO";
    case PEERREG_EPERM: return "PEERREG_EPERM";
    case PEERREG_ETIMEOUT: return "PEERREG_ETIMEOUT";
    case PEERREG_EAMBIGUOUS: return "PEERREG_EAMBIGUOUS";
    case PEERREG_ELIMIT: return "PEERREG_ELIMIT";
    case PEERREG_ECLOSED: return "PEERREG_ECLOSED";
    default: return "PEERREG_UNKNOWN_CODE";
    }
}

/* Builds (does not throw) a PeerRegistryError(message, codeName, code). */
static napi_value make_peerreg_error(napi_env env, int code, const char *message) {
    napi_value argv[3], result = NULL;
    NODE_API_CALL(env, napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &argv[0]));
    NODE_API_CALL(env, napi_create_string_utf8(env, code_name(code), NAPI_AUTO_LENGTH, &argv[1]));
    NODE_API_CALL(env, napi_create_int32(env, code, &argv[2]));
    addon_state *state = get_state(env);
    napi_value ctor = NULL;
    if (state && state->error_class)
        NODE_API_CALL(env, napi_get_reference_value(env, state->error_class, &ctor));
    if (ctor) {
        NODE_API_CALL(env, napi_new_instance(env, ctor, 3, argv, &result));
    } else {
        NODE_API_CALL(env, napi_create_error(env, argv[1], argv[0], &result));
        NODE_API_CALL(env, napi_set_named_property(env, result, "errno", argv[2]));
    }
    return result;
}

/* Converts a failed call's error into a JS error and frees it. `e` may be NULL (the library
 * returned a code without an error object): the static errstr is used then. */
static napi_value take_library_error(napi_env env, int code, peerreg_error *e) {
    const char *message = e ? lib.error_message_(e) : NULL;
    if (!message || !*message) message = lib.errstr_(code);
    napi_value error = make_peerreg_error(env, code, message ? message : code_name(code));
    lib.error_free_(e);
    return error;
}

static napi_value throw_library_error(napi_env env, int code, peerreg_error *e) {
    napi_value error = take_library_error(env, code, e);
    if (error) NODE_API_CALL(env, napi_throw(env, error));
    return NULL;
}

static bool require_library(napi_env env) {
    if (library_loaded()) return true;
    napi_throw_error(env, "ERR_PEERREG_LIBRARY_NOT_LOADED",
                     "libpeerregistry is not loaded (call loadLibrary() first)");
    return false;
}

/* An optional (0.2.0) function: present, or a PeerRegistryError PEERREG_EINVAL saying which
 * library version it needs is thrown and false returned. */
static bool require_symbol(napi_env env, const void *fn, const char *name) {
    if (fn) return true;
    char message[PATH_MAX + 256];
    snprintf(message, sizeof message,
             "%s needs libpeerregistry >= 0.2.0; the library loaded from %s is %s", name,
             lib_path, lib.version_());
    napi_value error = make_peerreg_error(env, PEERREG_EINVAL, message);
    if (error) napi_throw(env, error);
    return false;
}

/* Takes ownership of a library string: returns it as a JS string (or null) and frees it. */
static napi_value take_library_string(napi_env env, char *s) {
    napi_value result = NULL;
    napi_status status = s ? napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &result)
                           : napi_get_null(env, &result);
    lib.free_(s);
    NODE_API_CALL(env, status);
    return result;
}

/* ---- arguments ----------------------------------------------------------------------------- */

#define MAX_ARGS 5

typedef struct {
    size_t argc;
    napi_value argv[MAX_ARGS];
} call_args;

static bool get_args(napi_env env, napi_callback_info info, call_args *args) {
    args->argc = MAX_ARGS;
    NODE_API_CALL_BOOL(env, napi_get_cb_info(env, info, &args->argc, args->argv, NULL, NULL));
    for (size_t i = args->argc; i < MAX_ARGS; i++)
        NODE_API_CALL_BOOL(env, napi_get_undefined(env, &args->argv[i]));
    return true;
}

static bool throw_type_error(napi_env env, const char *code, const char *name, const char *what) {
    char message[256];
    snprintf(message, sizeof message, "The \"%s\" argument %s", name, what);
    napi_throw_type_error(env, code, message);
    return false;
}

/* A string argument as malloc'd UTF-8 (free with free()). undefined and null become NULL, which
 * the library itself rejects where a string is required: NULL handling is its contract.
 * A string with an embedded NUL is refused here: C would silently cut it short, and "a\0b"
 * would then act on the entry "a". */
static bool get_optional_string(napi_env env, napi_value value, const char *name, char **out) {
    *out = NULL;
    napi_valuetype type;
    NODE_API_CALL_BOOL(env, napi_typeof(env, value, &type));
    if (type == napi_undefined || type == napi_null) return true;
    if (type != napi_string)
        return throw_type_error(env, "ERR_INVALID_ARG_TYPE", name, "must be a string");
    size_t length = 0;
    NODE_API_CALL_BOOL(env, napi_get_value_string_utf8(env, value, NULL, 0, &length));
    char *buffer = malloc(length + 1);
    if (!buffer) {
        napi_throw_error(env, "ERR_PEERREG_NOMEM", "out of memory");
        return false;
    }
    size_t copied = 0;
    napi_status status = napi_get_value_string_utf8(env, value, buffer, length + 1, &copied);
    if (status != napi_ok) {
        free(buffer);
        throw_napi_failure(env, "napi_get_value_string_utf8", status);
        return false;
    }
    if (strlen(buffer) != copied) {
        free(buffer);
        return throw_type_error(env, "ERR_INVALID_ARG_VALUE", name,
                                "must not contain NUL characters");
    }
    *out = buffer;
    return true;
}

static bool get_int32(napi_env env, napi_value value, const char *name, int32_t *out) {
    napi_valuetype type;
    NODE_API_CALL_BOOL(env, napi_typeof(env, value, &type));
    if (type != napi_number)
        return throw_type_error(env, "ERR_INVALID_ARG_TYPE", name, "must be a number");
    double d;
    NODE_API_CALL_BOOL(env, napi_get_value_double(env, value, &d));
    if (!(d >= INT32_MIN && d <= INT32_MAX) || d != (double)(int32_t)d)
        return throw_type_error(env, "ERR_OUT_OF_RANGE", name, "must be a 32-bit integer");
    *out = (int32_t)d;
    return true;
}

/* An optional scope argument: undefined or null leave *scoped false (plain peerreg_resolve);
 * else it is a PEERREG_SCOPE_* number for peerreg_resolve_scoped, which validates it. */
static bool get_optional_scope(napi_env env, napi_value value, bool *scoped, int32_t *scope) {
    napi_valuetype type;
    *scoped = false;
    NODE_API_CALL_BOOL(env, napi_typeof(env, value, &type));
    if (type == napi_undefined || type == napi_null) return true;
    *scoped = true;
    return get_int32(env, value, "scope", scope);
}

/* ---- registry handles ---------------------------------------------------------------------- */

/* The handle stays in the box after close(): the library never dereferences handles (it looks
 * them up in a table of live ones and never reuses them), so a call on a closed handle gets
 * the library's own PEERREG_ECLOSED. `closed` only answers isClosed() and spares the finalizer
 * a second peerreg_close. */
typedef struct {
    peerreg_registry *reg;
    bool closed;
} registry_box;

static void registry_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    registry_box *box = data;
    if (!box->closed && library_loaded()) lib.close_(box->reg);
    free(box);
}

/* The registry handle behind argument `value`; false with an exception pending otherwise. */
static bool get_registry(napi_env env, napi_value value, registry_box **out) {
    napi_valuetype type;
    NODE_API_CALL_BOOL(env, napi_typeof(env, value, &type));
    bool tagged = false;
    if (type == napi_external)
        NODE_API_CALL_BOOL(env, napi_check_object_type_tag(env, value, &registry_tag, &tagged));
    if (!tagged)
        return throw_type_error(env, "ERR_INVALID_ARG_TYPE", "handle",
                                "must be a registry handle");
    NODE_API_CALL_BOOL(env, napi_get_value_external(env, value, (void **)out));
    return true;
}

static bool get_library_registry(napi_env env, napi_value value, peerreg_registry **out) {
    registry_box *box = NULL;
    if (!require_library(env) || !get_registry(env, value, &box)) return false;
    *out = box->reg;
    return true;
}

/* open(path | null) -> handle */
static napi_value js_open(napi_env env, napi_callback_info info) {
    call_args a;
    char *path = NULL;
    if (!require_library(env) || !get_args(env, info, &a) ||
        !get_optional_string(env, a.argv[0], "path", &path))
        return NULL;
    peerreg_registry *reg = NULL;
    peerreg_error *e = NULL;
    int rc = lib.open_(&reg, path, &e);
    free(path);
    if (rc != PEERREG_OK) return throw_library_error(env, rc, e);
    lib.error_free_(e); /* NULL on success per the header; free anyway, it is a no-op */

    registry_box *box = calloc(1, sizeof *box);
    if (!box) {
        lib.close_(reg);
        napi_throw_error(env, "ERR_PEERREG_NOMEM", "out of memory");
        return NULL;
    }
    box->reg = reg;
    napi_value handle;
    napi_status status = napi_create_external(env, box, registry_finalize, NULL, &handle);
    if (status != napi_ok) {
        lib.close_(reg);
        free(box);
        throw_napi_failure(env, "napi_create_external", status);
        return NULL;
    }
    NODE_API_CALL(env, napi_type_tag_object(env, handle, &registry_tag));
    return handle;
}

/* close(handle): idempotent. */
static napi_value js_close(napi_env env, napi_callback_info info) {
    call_args a;
    registry_box *box = NULL;
    if (!require_library(env) || !get_args(env, info, &a) || !get_registry(env, a.argv[0], &box))
        return NULL;
    if (!box->closed) {
        box->closed = true;
        lib.close_(box->reg);
    }
    return NULL;
}

/* isClosed(handle) -> boolean */
static napi_value js_is_closed(napi_env env, napi_callback_info info) {
    call_args a;
    registry_box *box = NULL;
    if (!get_args(env, info, &a) || !get_registry(env, a.argv[0], &box)) return NULL;
    napi_value result;
    NODE_API_CALL(env, napi_get_boolean(env, box->closed, &result));
    return result;
}

/* Calls that take (handle, string) and return a library string or nothing. */
typedef int (*string_op)(peerreg_registry *, const char *, char **, peerreg_error **);

static napi_value call_string_op(napi_env env, napi_callback_info info, const char *arg_name,
                                 string_op op, bool returns_string) {
    call_args a;
    peerreg_registry *reg = NULL;
    char *arg = NULL;
    if (!get_args(env, info, &a) || !get_library_registry(env, a.argv[0], &reg) ||
        !get_optional_string(env, a.argv[1], arg_name, &arg))
        return NULL;
    char *out = NULL;
    peerreg_error *e = NULL;
    int rc = op(reg, arg, returns_string ? &out : NULL, &e);
    free(arg);
    if (rc != PEERREG_OK) {
        lib.free_(out);
        return throw_library_error(env, rc, e);
    }
    lib.error_free_(e);
    return returns_string ? take_library_string(env, out) : NULL;
}

static int op_register(peerreg_registry *r, const char *s, char **o, peerreg_error **e) {
    return lib.register_(r, s, o, e);
}
static int op_get(peerreg_registry *r, const char *s, char **o, peerreg_error **e) {
    return lib.get_(r, s, o, e);
}
static int op_list(peerreg_registry *r, const char *s, char **o, peerreg_error **e) {
    return lib.list_(r, s, o, e);
}
static int op_unregister(peerreg_registry *r, const char *s, char **o, peerreg_error **e) {
    (void)o;
    return lib.unregister_(r, s, e);
}
static int op_heartbeat(peerreg_registry *r, const char *s, char **o, peerreg_error **e) {
    (void)o;
    return lib.heartbeat_(r, s, e);
}

/* register(handle, entryJson) -> stored entry JSON */
static napi_value js_register(napi_env env, napi_callback_info info) {
    return call_string_op(env, info, "entry", op_register, true);
}
/* get(handle, id) -> entry JSON */
static napi_value js_get(napi_env env, napi_callback_info info) {
    return call_string_op(env, info, "id", op_get, true);
}
/* list(handle, filterJson | null) -> {"generation":N,"servers":[...]} JSON */
static napi_value js_list(napi_env env, napi_callback_info info) {
    return call_string_op(env, info, "filter", op_list, true);
}
/* unregister(handle, id) */
static napi_value js_unregister(napi_env env, napi_callback_info info) {
    return call_string_op(env, info, "id", op_unregister, false);
}
/* heartbeat(handle, id) */
static napi_value js_heartbeat(napi_env env, napi_callback_info info) {
    return call_string_op(env, info, "id", op_heartbeat, false);
}

/* resolve(handle, kind, name, scope | undefined) -> entry JSON. Without a scope it is
 * peerreg_resolve (every library has it), with one peerreg_resolve_scoped (0.2.0). */
static napi_value js_resolve(napi_env env, napi_callback_info info) {
    call_args a;
    peerreg_registry *reg = NULL;
    int32_t kind = 0, scope = 0;
    bool scoped = false;
    char *name = NULL;
    if (!get_args(env, info, &a) || !get_library_registry(env, a.argv[0], &reg) ||
        !get_int32(env, a.argv[1], "kind", &kind) ||
        !get_optional_scope(env, a.argv[3], &scoped, &scope) ||
        (scoped && !require_symbol(env, lib.resolve_scoped_, "peerreg_resolve_scoped")) ||
        !get_optional_string(env, a.argv[2], "name", &name))
        return NULL;
    char *out = NULL;
    peerreg_error *e = NULL;
    int rc = scoped ? lib.resolve_scoped_(reg, kind, name, scope, &out, &e)
                    : lib.resolve_(reg, kind, name, &out, &e);
    free(name);
    if (rc != PEERREG_OK) {
        lib.free_(out);
        return throw_library_error(env, rc, e);
    }
    lib.error_free_(e);
    return take_library_string(env, out);
}

/* setHealth(handle, id, status, message | null) */
static napi_value js_set_health(napi_env env, napi_callback_info info) {
    call_args a;
    peerreg_registry *reg = NULL;
    char *id = NULL, *message = NULL;
    int32_t status = 0;
    if (!get_args(env, info, &a) || !get_library_registry(env, a.argv[0], &reg) ||
        !get_int32(env, a.argv[2], "status", &status) ||
        !get_optional_string(env, a.argv[1], "id", &id))
        return NULL;
    if (!get_optional_string(env, a.argv[3], "message", &message)) {
        free(id);
        return NULL;
    }
    peerreg_error *e = NULL;
    int rc = lib.set_health_(reg, id, status, message, &e);
    free(id);
    free(message);
    if (rc != PEERREG_OK) return throw_library_error(env, rc, e);
    lib.error_free_(e);
    return NULL;
}

/* prune(handle) -> number of entries removed */
static napi_value js_prune(napi_env env, napi_callback_info info) {
    call_args a;
    peerreg_registry *reg = NULL;
    if (!get_args(env, info, &a) || !get_library_registry(env, a.argv[0], &reg)) return NULL;
    int removed = 0;
    peerreg_error *e = NULL;
    int rc = lib.prune_(reg, &removed, &e);
    if (rc != PEERREG_OK) return throw_library_error(env, rc, e);
    lib.error_free_(e);
    napi_value result;
    NODE_API_CALL(env, napi_create_int32(env, removed, &result));
    return result;
}

/* ---- calls off the event loop --------------------------------------------------------------- */

/* A write waits for servers.json.lock (up to 5 s, or $PEER_REGISTRY_LOCK_TIMEOUT_MS) and then
 * fsyncs twice; a probe waits on the network. Run on the event loop, either freezes every timer
 * and socket of the process for that long — and a probe of a server living in this very process
 * would block the loop that has to answer it. So every call of the promise API runs here, on the
 * libuv thread pool, and settles a promise back on the loop. The registry handle is thread-safe
 * (header); the work holds a reference to the handle's external so that its finalizer cannot
 * close the handle while the call runs (close() may: the library then answers PEERREG_ECLOSED
 * or finishes the call first, both defined). */
typedef enum {
    ASYNC_REGISTER = 1,
    ASYNC_UNREGISTER,
    ASYNC_GET,
    ASYNC_LIST,
    ASYNC_RESOLVE,
    ASYNC_SET_HEALTH,
    ASYNC_HEARTBEAT,
    ASYNC_PRUNE,
    ASYNC_PROBE,
    ASYNC_OP_COUNT
} async_op;

typedef struct {
    napi_async_work work;
    napi_deferred deferred;
    napi_ref handle_ref;
    peerreg_registry *reg;
    async_op op;
    char *text;      /* entry JSON, id, filter JSON or name (NULL: none) */
    char *message;   /* setHealth's message (NULL: none) */
    int32_t number;  /* resolve's kind, setHealth's status, probe's timeout */
    bool scoped;     /* resolve with a scope: peerreg_resolve_scoped */
    int32_t scope;
    int rc;
    int removed;     /* prune's result */
    char *out;       /* a library string, for the calls that return one */
    peerreg_error *err;
} async_call;

static void async_call_free(napi_env env, async_call *c) {
    if (c->work) NODE_API_CALL_RELEASE(env, napi_delete_async_work(env, c->work));
    if (c->handle_ref) NODE_API_CALL_RELEASE(env, napi_delete_reference(env, c->handle_ref));
    free(c->text);
    free(c->message);
    free(c);
}

/* On a thread-pool thread: only the library is touched here, never N-API. */
static void async_execute(napi_env env, void *data) {
    (void)env;
    async_call *c = data;
    switch (c->op) {
    case ASYNC_REGISTER: c->rc = lib.register_(c->reg, c->text, &c->out, &c->err); break;
    case ASYNC_UNREGISTER: c->rc = lib.unregister_(c->reg, c->text, &c->err); break;
    case ASYNC_GET: c->rc = lib.get_(c->reg, c->text, &c->out, &c->err); break;
    case ASYNC_LIST: c->rc = lib.list_(c->reg, c->text, &c->out, &c->err); break;
    case ASYNC_RESOLVE:
        c->rc = c->scoped
                    ? lib.resolve_scoped_(c->reg, c->number, c->text, c->scope, &c->out, &c->err)
                    : lib.resolve_(c->reg, c->number, c->text, &c->out, &c->err);
        break;
    case ASYNC_SET_HEALTH:
        c->rc = lib.set_health_(c->reg, c->text, c->number, c->message, &c->err);
        break;
    case ASYNC_HEARTBEAT: c->rc = lib.heartbeat_(c->reg, c->text, &c->err); break;
    case ASYNC_PRUNE: c->rc = lib.prune_(c->reg, &c->removed, &c->err); break;
    case ASYNC_PROBE: c->rc = lib.probe_(c->reg, c->text, c->number, &c->out, &c->err); break;
    default: c->rc = PEERREG_EINVAL; break; /* unreachable: js_call_async checks op */
    }
}

static bool async_returns_string(async_op op) {
    return op == ASYNC_REGISTER || op == ASYNC_GET || op == ASYNC_LIST || op == ASYNC_RESOLVE ||
           op == ASYNC_PROBE;
}

/* Back on the loop: resolve with the result (a JSON string, the number removed, or undefined)
 * or reject with the library's error. */
static void async_complete(napi_env env, napi_status status, void *data) {
    async_call *c = data;
    napi_value value = NULL;
    bool ok = false;
    if (status != napi_ok) {
        lib.free_(c->out);
        lib.error_free_(c->err);
        napi_value code = NULL, message = NULL;
        if (napi_create_string_utf8(env, "ERR_PEERREG_NAPI", NAPI_AUTO_LENGTH, &code) == napi_ok &&
            napi_create_string_utf8(env, "peer-registry addon: the call was cancelled",
                                    NAPI_AUTO_LENGTH, &message) == napi_ok)
            NODE_API_CALL_RELEASE(env, napi_create_error(env, code, message, &value));
    } else if (c->rc != PEERREG_OK) {
        lib.free_(c->out);
        value = take_library_error(env, c->rc, c->err);
    } else {
        lib.error_free_(c->err);
        if (async_returns_string(c->op)) {
            value = take_library_string(env, c->out);
        } else {
            lib.free_(c->out); /* NULL: no out parameter was passed */
            if (c->op == ASYNC_PRUNE)
                NODE_API_CALL_RELEASE(env, napi_create_int32(env, c->removed, &value));
            else
                NODE_API_CALL_RELEASE(env, napi_get_undefined(env, &value));
        }
        ok = value != NULL;
    }
    c->out = NULL;
    c->err = NULL;
    if (!value) {
        /* Building the result failed and left an exception pending: reject with it. */
        bool pending = false;
        if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
            NODE_API_CALL_RELEASE(env, napi_get_and_clear_last_exception(env, &value));
        if (!value) NODE_API_CALL_RELEASE(env, napi_get_undefined(env, &value));
    }
    if (ok)
        NODE_API_CALL_RELEASE(env, napi_resolve_deferred(env, c->deferred, value));
    else
        NODE_API_CALL_RELEASE(env, napi_reject_deferred(env, c->deferred, value));
    async_call_free(env, c);
}

/* callAsync(op, handle, text | null, number, extra) -> Promise. Arguments are checked here, on
 * the loop, and a bad one throws at once (the JS side turns that into a rejection); `number` is
 * read only by the calls that use it, `extra` is setHealth's message (string | null) or
 * resolve's scope (as for resolve(): undefined or null for none). */
static napi_value js_call_async(napi_env env, napi_callback_info info) {
    call_args a;
    int32_t op = 0, number = 0;
    peerreg_registry *reg = NULL;
    if (!get_args(env, info, &a) || !get_int32(env, a.argv[0], "op", &op)) return NULL;
    if (op < ASYNC_REGISTER || op >= ASYNC_OP_COUNT) {
        throw_type_error(env, "ERR_OUT_OF_RANGE", "op", "is not a known call");
        return NULL;
    }
    bool uses_number = op == ASYNC_RESOLVE || op == ASYNC_SET_HEALTH || op == ASYNC_PROBE;
    bool scoped = false;
    int32_t scope = 0;
    if (!get_library_registry(env, a.argv[1], &reg) ||
        (uses_number && !get_int32(env, a.argv[3], "number", &number)) ||
        (op == ASYNC_RESOLVE && !get_optional_scope(env, a.argv[4], &scoped, &scope)) ||
        (scoped && !require_symbol(env, lib.resolve_scoped_, "peerreg_resolve_scoped")))
        return NULL;
    async_call *c = calloc(1, sizeof *c);
    if (!c) {
        napi_throw_error(env, "ERR_PEERREG_NOMEM", "out of memory");
        return NULL;
    }
    c->reg = reg;
    c->op = (async_op)op;
    c->number = number;
    c->scoped = scoped;
    c->scope = scope;
    if (!get_optional_string(env, a.argv[2], "argument", &c->text) ||
        (op == ASYNC_SET_HEALTH && !get_optional_string(env, a.argv[4], "message", &c->message))) {
        async_call_free(env, c);
        return NULL;
    }
#define ASYNC_CALL(call)                                                                       \
    do {                                                                                       \
        napi_status s_ = (call);                                                               \
        if (s_ != napi_ok) {                                                                   \
            async_call_free(env, c);                                                           \
            throw_napi_failure(env, #call, s_);                                                \
            return NULL;                                                                       \
        }                                                                                      \
    } while (0)
    napi_value promise, resource_name;
    ASYNC_CALL(napi_create_reference(env, a.argv[1], 1, &c->handle_ref));
    ASYNC_CALL(napi_create_string_utf8(env, "PeerRegistryCall", NAPI_AUTO_LENGTH,
                                       &resource_name));
    ASYNC_CALL(napi_create_async_work(env, NULL, resource_name, async_execute, async_complete, c,
                                      &c->work));
    ASYNC_CALL(napi_create_promise(env, &c->deferred, &promise));
    napi_status st = napi_queue_async_work(env, c->work);
    if (st != napi_ok) {
        /* The promise exists: settle it rather than leave it pending forever. */
        napi_value error = NULL;
        throw_napi_failure(env, "napi_queue_async_work", st);
        NODE_API_CALL_RELEASE(env, napi_get_and_clear_last_exception(env, &error));
        NODE_API_CALL_RELEASE(env, napi_reject_deferred(env, c->deferred, error));
        async_call_free(env, c);
    }
#undef ASYNC_CALL
    return promise;
}

/* ---- watches --------------------------------------------------------------------------------- */

/*
 * A watch lives in three places: the peerreg_watch (library), a uv_poll_t on its fd (libuv),
 * and the JS external that owns this struct. While the watch is open, strong references to the
 * external and the callback keep both alive (the loop, not JS, is then what holds the watch, as
 * with a net.Server); close() drops them, stops and uv_close()s the poll handle (which frees
 * itself in its close callback: libuv still owns it until then) and closes the library watch.
 * The struct itself is freed by the external's finalizer.
 */
typedef struct {
    napi_env env;
    peerreg_watch *w;          /* NULL once closed */
    uv_poll_t *poll;           /* NULL once closed */
    napi_ref self;             /* strong while open */
    napi_ref callback;         /* strong while open */
    napi_async_context async_context;
    bool cleanup_hook;         /* registered with napi_add_env_cleanup_hook */
} watch_box;

static void poll_closed(uv_handle_t *handle) { free(handle); }

static void watch_cleanup_hook(void *arg);

/* Releases everything but the struct. Safe to call twice; callable from finalizers and hooks. */
static void watch_shutdown(watch_box *box) {
    if (box->poll) {
        uv_poll_stop(box->poll);   /* after this the fd may be closed (libuv docs) */
        box->poll->data = NULL;
        uv_close((uv_handle_t *)box->poll, poll_closed);
        box->poll = NULL;
    }
    if (box->w) {
        if (library_loaded()) lib.watch_close_(box->w);
        box->w = NULL;
    }
    if (box->callback) {
        NODE_API_CALL_RELEASE(box->env, napi_delete_reference(box->env, box->callback));
        box->callback = NULL;
    }
    if (box->self) {
        NODE_API_CALL_RELEASE(box->env, napi_delete_reference(box->env, box->self));
        box->self = NULL;
    }
    if (box->async_context) {
        NODE_API_CALL_RELEASE(box->env, napi_async_destroy(box->env, box->async_context));
        box->async_context = NULL;
    }
    if (box->cleanup_hook) {
        NODE_API_CALL_RELEASE(box->env,
                              napi_remove_env_cleanup_hook(box->env, watch_cleanup_hook, box));
        box->cleanup_hook = false;
    }
}

/* The env is being torn down (process exit, worker termination) with this watch still open. */
static void watch_cleanup_hook(void *arg) {
    watch_box *box = arg;
    box->cleanup_hook = false; /* hooks must not remove themselves while running */
    watch_shutdown(box);
}

static void watch_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    watch_box *box = data;
    watch_shutdown(box);
    free(box);
}

/* Calls the JS callback as callback(error, eventJson) inside a callback scope (so nextTicks and
 * promise jobs run after it, like any I/O callback). Returns false when the callback threw; the
 * exception has then been handed to process 'uncaughtException', as for any event listener. */
static bool watch_deliver(watch_box *box, napi_value error, napi_value event) {
    napi_env env = box->env;
    napi_value callback = NULL, global, argv[2], result;
    NODE_API_CALL_QUIET(env, napi_get_reference_value(env, box->callback, &callback));
    if (!callback) return false;
    NODE_API_CALL_QUIET(env, napi_get_global(env, &global));
    if (error) {
        argv[0] = error;
        NODE_API_CALL_QUIET(env, napi_get_null(env, &argv[1]));
    } else {
        NODE_API_CALL_QUIET(env, napi_get_null(env, &argv[0]));
        argv[1] = event;
    }
    napi_status status =
        napi_make_callback(env, box->async_context, global, callback, 2, argv, &result);
    if (status == napi_ok) return true;
    bool pending = false;
    NODE_API_CALL_QUIET(env, napi_is_exception_pending(env, &pending));
    if (pending) {
        napi_value exception;
        NODE_API_CALL_QUIET(env, napi_get_and_clear_last_exception(env, &exception));
        NODE_API_CALL_QUIET(env, napi_fatal_exception(env, exception));
    }
    return false;
}

/* Upper bound of events handled per readiness, so a writer that never stops cannot starve the
 * loop; events are diffs, so whatever is left is picked up on the next readiness. */
#define WATCH_BATCH 64

static void on_watch_readable(uv_poll_t *handle, int status, int events) {
    (void)events;
    watch_box *box = handle->data;
    if (!box || !box->w) return;
    napi_env env = box->env;
    napi_handle_scope scope;
    NODE_API_CALL_VOID(env, napi_open_handle_scope(env, &scope));
    if (status < 0) {
        char message[256];
        snprintf(message, sizeof message, "polling the watch fd failed: %s", uv_strerror(status));
        napi_value error = make_peerreg_error(env, PEERREG_EIO, message);
        if (error) watch_deliver(box, error, NULL);
    } else {
        /* Drain until PEERREG_ETIMEOUT: the fd may stay quiet after this even if a diff is
         * still pending inside the library. Stop after an error (it would repeat; the next
         * file change wakes us again) or when a listener closed the watch. */
        for (int i = 0; i < WATCH_BATCH && box->w; i++) {
            char *json = NULL;
            peerreg_error *e = NULL;
            int rc = lib.watch_next_(box->w, 0, &json, &e);
            if (rc == PEERREG_ETIMEOUT) {
                lib.error_free_(e);
                lib.free_(json);
                break;
            }
            if (rc != PEERREG_OK) {
                lib.free_(json);
                if (rc == PEERREG_ECLOSED && box->poll) {
                    /* The library says this watch is dead: report it once, stop polling and
                     * stop holding the loop. close() still releases the rest. */
                    uv_poll_stop(box->poll);
                }
                napi_value error = take_library_error(env, rc, e);
                if (error) watch_deliver(box, error, NULL);
                break;
            }
            lib.error_free_(e);
            napi_value event = NULL;
            napi_status st = napi_create_string_utf8(env, json ? json : "null", NAPI_AUTO_LENGTH,
                                                     &event);
            lib.free_(json);
            if (st != napi_ok) break;
            if (!watch_deliver(box, NULL, event)) break;
        }
    }
    NODE_API_CALL_VOID(env, napi_close_handle_scope(env, scope));
}

/* watchOpen(handle, callback(err, eventJson), filterJson | null) -> watch handle (open,
 * polling, ref'd). Without a filter it is peerreg_watch_open (every library has it), with one
 * peerreg_watch_open_filtered (0.2.0). */
static napi_value js_watch_open(napi_env env, napi_callback_info info) {
    call_args a;
    peerreg_registry *reg = NULL;
    if (!get_args(env, info, &a) || !get_library_registry(env, a.argv[0], &reg)) return NULL;
    napi_valuetype type;
    NODE_API_CALL(env, napi_typeof(env, a.argv[1], &type));
    if (type != napi_function) {
        throw_type_error(env, "ERR_INVALID_ARG_TYPE", "callback", "must be a function");
        return NULL;
    }
    char *filter = NULL;
    if (!get_optional_string(env, a.argv[2], "filter", &filter)) return NULL;
    if (filter && !require_symbol(env, lib.watch_open_filtered_, "peerreg_watch_open_filtered")) {
        free(filter);
        return NULL;
    }
    uv_loop_t *loop = NULL;
    napi_status loop_status = napi_get_uv_event_loop(env, &loop);
    if (loop_status != napi_ok) {
        free(filter);
        throw_napi_failure(env, "napi_get_uv_event_loop", loop_status);
        return NULL;
    }

    peerreg_watch *w = NULL;
    peerreg_error *e = NULL;
    int rc = filter ? lib.watch_open_filtered_(&w, reg, filter, &e) : lib.watch_open_(&w, reg, &e);
    free(filter);
    if (rc != PEERREG_OK) return throw_library_error(env, rc, e);
    lib.error_free_(e);

    int fd = lib.watch_fd_(w);
    watch_box *box = calloc(1, sizeof *box);
    uv_poll_t *poll = calloc(1, sizeof *poll);
    if (!box || !poll) {
        free(box);
        free(poll);
        lib.watch_close_(w);
        napi_throw_error(env, "ERR_PEERREG_NOMEM", "out of memory");
        return NULL;
    }
    int uv_rc = fd < 0 ? UV_EBADF : uv_poll_init(loop, poll, fd);
    if (uv_rc != 0) {
        free(box);
        free(poll);
        lib.watch_close_(w);
        char message[256];
        snprintf(message, sizeof message, "cannot poll the watch fd %d: %s", fd,
                 uv_strerror(uv_rc));
        napi_value error = make_peerreg_error(env, PEERREG_EIO, message);
        if (error) NODE_API_CALL(env, napi_throw(env, error));
        return NULL;
    }
    box->env = env;
    box->w = w;
    box->poll = poll;
    poll->data = box;

    /* From here on box owns w and poll: a failure below is cleaned up by the finalizer (once
     * the external exists) or by watch_shutdown + free. */
    napi_value handle;
    napi_status st = napi_create_external(env, box, watch_finalize, NULL, &handle);
    if (st != napi_ok) {
        watch_shutdown(box);
        free(box);
        throw_napi_failure(env, "napi_create_external", st);
        return NULL;
    }
#define WATCH_CALL(call)                                                                       \
    do {                                                                                       \
        napi_status s_ = (call);                                                               \
        if (s_ != napi_ok) {                                                                   \
            watch_shutdown(box);                                                               \
            throw_napi_failure(env, #call, s_);                                                \
            return NULL;                                                                       \
        }                                                                                      \
    } while (0)
    WATCH_CALL(napi_type_tag_object(env, handle, &watch_tag));
    napi_value resource_name;
    WATCH_CALL(napi_create_string_utf8(env, "PeerRegistryWatch", NAPI_AUTO_LENGTH,
                                       &resource_name));
    WATCH_CALL(napi_async_init(env, handle, resource_name, &box->async_context));
    WATCH_CALL(napi_create_reference(env, a.argv[1], 1, &box->callback));
    WATCH_CALL(napi_create_reference(env, handle, 1, &box->self));
    WATCH_CALL(napi_add_env_cleanup_hook(env, watch_cleanup_hook, box));
    box->cleanup_hook = true;
    uv_rc = uv_poll_start(poll, UV_READABLE, on_watch_readable);
    if (uv_rc != 0) {
        watch_shutdown(box);
        char message[256];
        snprintf(message, sizeof message, "cannot poll the watch fd %d: %s", fd,
                 uv_strerror(uv_rc));
        napi_value error = make_peerreg_error(env, PEERREG_EIO, message);
        if (error) NODE_API_CALL(env, napi_throw(env, error));
        return NULL;
    }
#undef WATCH_CALL
    return handle;
}

static bool get_watch(napi_env env, napi_value value, watch_box **out) {
    napi_valuetype type;
    NODE_API_CALL_BOOL(env, napi_typeof(env, value, &type));
    bool tagged = false;
    if (type == napi_external)
        NODE_API_CALL_BOOL(env, napi_check_object_type_tag(env, value, &watch_tag, &tagged));
    if (!tagged)
        return throw_type_error(env, "ERR_INVALID_ARG_TYPE", "watch", "must be a watch handle");
    NODE_API_CALL_BOOL(env, napi_get_value_external(env, value, (void **)out));
    return true;
}

/* watchClose(watch): idempotent; after it no callback is made and the loop is not held. */
static napi_value js_watch_close(napi_env env, napi_callback_info info) {
    call_args a;
    watch_box *box = NULL;
    if (!get_args(env, info, &a) || !get_watch(env, a.argv[0], &box)) return NULL;
    watch_shutdown(box);
    return NULL;
}

/* watchRef(watch, bool): whether the open watch keeps the event loop alive (default true). */
static napi_value js_watch_ref(napi_env env, napi_callback_info info) {
    call_args a;
    watch_box *box = NULL;
    bool keep = true;
    if (!get_args(env, info, &a) || !get_watch(env, a.argv[0], &box)) return NULL;
    NODE_API_CALL(env, napi_get_value_bool(env, a.argv[1], &keep));
    if (box->poll) {
        if (keep)
            uv_ref((uv_handle_t *)box->poll);
        else
            uv_unref((uv_handle_t *)box->poll);
    }
    return NULL;
}

/* watchIsClosed(watch) -> boolean */
static napi_value js_watch_is_closed(napi_env env, napi_callback_info info) {
    call_args a;
    watch_box *box = NULL;
    if (!get_args(env, info, &a) || !get_watch(env, a.argv[0], &box)) return NULL;
    napi_value result;
    NODE_API_CALL(env, napi_get_boolean(env, box->w == NULL, &result));
    return result;
}

/* ---- loading the library, versions ----------------------------------------------------------- */

/* loadLibrary(path) -> the real path of the file loaded. dlopen()s `path` (a file path, or a
 * bare soname for the system loader) and resolves every symbol; throws an Error whose message
 * is the loader's reason. Once a library is loaded it stays loaded (its functions may be in use
 * anywhere): a second call returns the loaded path without loading anything; the JS side
 * decides whether that is acceptable. */
static napi_value js_load_library(napi_env env, napi_callback_info info) {
    call_args a;
    char *path = NULL;
    if (!get_args(env, info, &a) || !get_optional_string(env, a.argv[0], "path", &path))
        return NULL;
    if (!path) {
        throw_type_error(env, "ERR_INVALID_ARG_TYPE", "path", "must be a string");
        return NULL;
    }
    char failure[1024] = "";
    pthread_mutex_lock(&load_mutex);
    if (!library_loaded()) {
        dlerror();
        void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char *why = dlerror();
            snprintf(failure, sizeof failure, "%s", why ? why : "dlopen failed");
        } else {
            peerreg_api api;
            memset(&api, 0, sizeof api);
            const char *missing = NULL;
#define X(name)                                                                                \
    if (!missing) {                                                                            \
        *(void **)&api.name##_ = dlsym(handle, "peerreg_" #name);                                 \
        if (!api.name##_) missing = "peerreg_" #name;                                             \
    }
            PEERREG_SYMBOLS(X)
#undef X
#define X(name) *(void **)&api.name##_ = dlsym(handle, "peerreg_" #name);
            PEERREG_OPTIONAL_SYMBOLS(X)
#undef X
            int number = missing ? 0 : api.version_number_();
            if (missing) {
                snprintf(failure, sizeof failure, "%s: symbol %s not found", path, missing);
            } else if (number / 1000000 != PEERREG_VERSION_NUMBER / 1000000 ||
                       number / 1000 % 1000 < PEERREG_VERSION_NUMBER / 1000 % 1000) {
                /* Same rule as the Python and Go bindings: the header's major version, and at
                 * least its minor version. */
                snprintf(failure, sizeof failure,
                         "%s: libpeerregistry %s (%d) is not compatible with this binding, "
                         "which needs %d.%d.x or a later %d.x (header PEERREG_VERSION_NUMBER %d)",
                         path, api.version_(), number, PEERREG_VERSION_NUMBER / 1000000,
                         PEERREG_VERSION_NUMBER / 1000 % 1000, PEERREG_VERSION_NUMBER / 1000000,
                         PEERREG_VERSION_NUMBER);
            }
            if (failure[0]) {
                dlclose(handle);
            } else {
                Dl_info where;
                char real[PATH_MAX];
                const char *file = path;
                if (dladdr(*(void **)&api.version_, &where) && where.dli_fname)
                    file = where.dli_fname;
                if (realpath(file, real)) file = real;
                snprintf(lib_path, sizeof lib_path, "%s", file);
                lib = api;
                lib_handle = handle;
                __atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
            }
        }
    }
    pthread_mutex_unlock(&load_mutex);
    free(path);
    if (failure[0]) {
        napi_throw_error(env, "ERR_PEERREG_LIBRARY_LOAD", failure);
        return NULL;
    }
    napi_value result;
    NODE_API_CALL(env, napi_create_string_utf8(env, lib_path, NAPI_AUTO_LENGTH, &result));
    return result;
}

/* libraryPath() -> the loaded library's real path, or null */
static napi_value js_library_path(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value result;
    if (library_loaded())
        NODE_API_CALL(env, napi_create_string_utf8(env, lib_path, NAPI_AUTO_LENGTH, &result));
    else
        NODE_API_CALL(env, napi_get_null(env, &result));
    return result;
}

static napi_value js_version(napi_env env, napi_callback_info info) {
    (void)info;
    if (!require_library(env)) return NULL;
    napi_value result;
    NODE_API_CALL(env, napi_create_string_utf8(env, lib.version_(), NAPI_AUTO_LENGTH, &result));
    return result;
}

static napi_value js_version_number(napi_env env, napi_callback_info info) {
    (void)info;
    if (!require_library(env)) return NULL;
    napi_value result;
    NODE_API_CALL(env, napi_create_int32(env, lib.version_number_(), &result));
    return result;
}

/* errstr(code) -> the library's static name for a code */
static napi_value js_errstr(napi_env env, napi_callback_info info) {
    call_args a;
    int32_t code = 0;
    if (!require_library(env) || !get_args(env, info, &a) ||
        !get_int32(env, a.argv[0], "code", &code))
        return NULL;
    napi_value result;
    NODE_API_CALL(env, napi_create_string_utf8(env, lib.errstr_(code), NAPI_AUTO_LENGTH, &result));
    return result;
}

/* init(ErrorClass): the constructor used for library errors, new ErrorClass(message, code,
 * errno). */
static napi_value js_init(napi_env env, napi_callback_info info) {
    call_args a;
    if (!get_args(env, info, &a)) return NULL;
    napi_valuetype type;
    NODE_API_CALL(env, napi_typeof(env, a.argv[0], &type));
    if (type != napi_function) {
        throw_type_error(env, "ERR_INVALID_ARG_TYPE", "ErrorClass", "must be a function");
        return NULL;
    }
    addon_state *state = get_state(env);
    if (!state) {
        napi_throw_error(env, "ERR_PEERREG_NAPI", "addon state missing");
        return NULL;
    }
    if (state->error_class) NODE_API_CALL(env, napi_delete_reference(env, state->error_class));
    state->error_class = NULL;
    NODE_API_CALL(env, napi_create_reference(env, a.argv[0], 1, &state->error_class));
    return NULL;
}

static void state_finalize(napi_env env, void *data, void *hint) {
    (void)hint;
    addon_state *state = data;
    if (state->error_class)
        NODE_API_CALL_RELEASE(env, napi_delete_reference(env, state->error_class));
    free(state);
}

/* ---- module ---------------------------------------------------------------------------------- */

static bool set_int(napi_env env, napi_value obj, const char *name, int value) {
    napi_value v;
    NODE_API_CALL_BOOL(env, napi_create_int32(env, value, &v));
    NODE_API_CALL_BOOL(env, napi_set_named_property(env, obj, name, v));
    return true;
}

NAPI_MODULE_INIT() {
    addon_state *state = calloc(1, sizeof *state);
    if (!state) {
        napi_throw_error(env, "ERR_PEERREG_NOMEM", "out of memory");
        return NULL;
    }
    napi_status st = napi_set_instance_data(env, state, state_finalize, NULL);
    if (st != napi_ok) {
        free(state);
        throw_napi_failure(env, "napi_set_instance_data", st);
        return NULL;
    }

    napi_property_descriptor methods[] = {
#define METHOD(js, c) {js, NULL, c, NULL, NULL, NULL, napi_enumerable, NULL}
        METHOD("init", js_init),
        METHOD("loadLibrary", js_load_library),
        METHOD("libraryPath", js_library_path),
        METHOD("version", js_version),
        METHOD("versionNumber", js_version_number),
        METHOD("errstr", js_errstr),
        METHOD("open", js_open),
        METHOD("close", js_close),
        METHOD("isClosed", js_is_closed),
        METHOD("register", js_register),
        METHOD("unregister", js_unregister),
        METHOD("get", js_get),
        METHOD("list", js_list),
        METHOD("resolve", js_resolve),
        METHOD("setHealth", js_set_health),
        METHOD("heartbeat", js_heartbeat),
        METHOD("prune", js_prune),
        METHOD("callAsync", js_call_async),
        METHOD("watchOpen", js_watch_open),
        METHOD("watchClose", js_watch_close),
        METHOD("watchRef", js_watch_ref),
        METHOD("watchIsClosed", js_watch_is_closed),
#undef METHOD
    };
    NODE_API_CALL(env, napi_define_properties(env, exports, sizeof methods / sizeof methods[0],
                                              methods));

    napi_value header_version;
    NODE_API_CALL(env, napi_create_string_utf8(env, PEERREG_VERSION, NAPI_AUTO_LENGTH,
                                               &header_version));
    NODE_API_CALL(env, napi_set_named_property(env, exports, "HEADER_VERSION", header_version));
    if (!set_int(env, exports, "HEADER_VERSION_NUMBER", PEERREG_VERSION_NUMBER)) return NULL;

    napi_value codes, kinds, health, scopes;
    NODE_API_CALL(env, napi_create_object(env, &codes));
    NODE_API_CALL(env, napi_create_object(env, &kinds));
    NODE_API_CALL(env, napi_create_object(env, &scopes));
    NODE_API_CALL(env, napi_create_object(env, &health));
    static const int all_codes[] = {PEERREG_OK,        PEERREG_EINVAL,   PEERREG_ENOTFOUND,
                                    PEERREG_EEXISTS,   PEERREG_ECORRUPT, PEERREG_EIO,
                                    PEERREG_EPERM,     PEERREG_ETIMEOUT, PEERREG_EAMBIGUOUS,
                                    PEERREG_ELIMIT,    PEERREG_ECLOSED};
    for (size_t i = 0; i < sizeof all_codes / sizeof all_codes[0]; i++)
        if (!set_int(env, codes, code_name(all_codes[i]) + strlen("PEERREG_"), all_codes[i]))
            return NULL;
    if (!set_int(env, kinds, "TOOL", PEERREG_TOOL) ||
        !set_int(env, kinds, "RESOURCE", PEERREG_RESOURCE) ||
        !set_int(env, kinds, "PROMPT", PEERREG_PROMPT) ||
        !set_int(env, health, "UNKNOWN", PEERREG_UNKNOWN) ||
        !set_int(env, health, "HEALTHY", PEERREG_HEALTHY) ||
        !set_int(env, health, "DEGRADED", PEERREG_DEGRADED) ||
        !set_int(env, health, "DOWN", PEERREG_DOWN) ||
        !set_int(env, scopes, "local", PEERREG_SCOPE_LOCAL) ||
        !set_int(env, scopes, "cluster", PEERREG_SCOPE_CLUSTER))
        return NULL;
    NODE_API_CALL(env, napi_set_named_property(env, exports, "codes", codes));
    NODE_API_CALL(env, napi_set_named_property(env, exports, "kinds", kinds));
    NODE_API_CALL(env, napi_set_named_property(env, exports, "health", health));
    NODE_API_CALL(env, napi_set_named_property(env, exports, "scopes", scopes));
    napi_value ops;
    NODE_API_CALL(env, napi_create_object(env, &ops));
    if (!set_int(env, ops, "register", ASYNC_REGISTER) ||
        !set_int(env, ops, "unregister", ASYNC_UNREGISTER) || !set_int(env, ops, "get", ASYNC_GET) ||
        !set_int(env, ops, "list", ASYNC_LIST) || !set_int(env, ops, "resolve", ASYNC_RESOLVE) ||
        !set_int(env, ops, "setHealth", ASYNC_SET_HEALTH) ||
        !set_int(env, ops, "heartbeat", ASYNC_HEARTBEAT) ||
        !set_int(env, ops, "prune", ASYNC_PRUNE) || !set_int(env, ops, "probe", ASYNC_PROBE))
        return NULL;
    NODE_API_CALL(env, napi_set_named_property(env, exports, "asyncOps", ops));
    return exports;
}
