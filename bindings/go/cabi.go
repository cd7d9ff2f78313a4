package peerregistry

// This file is the only one that talks to C. The library is not linked at build time: it is
// dlopen'ed at run time (see library.go for where it is looked for), its functions are kept
// in a table of pointers typed from include/peer_registry.h, and each is called through a
// small static trampoline, because Go cannot call a C function pointer directly.
//
// Strings go in as NUL-terminated Go byte slices (the library only borrows them for the call,
// and they hold no Go pointers, so cgo allows it); strings come out as library-allocated
// char* that are copied into Go memory and released with peerreg_free at once.

/*
#cgo CFLAGS: -I${SRCDIR} -D_GNU_SOURCE
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include "peer_registry.h"

// __typeof__ makes every pointer's type come from the header itself, so a signature change
// there is a compile error here rather than a crash at run time.
typedef struct {
	void *handle;
	__typeof__(peerreg_version)        *version;
	__typeof__(peerreg_version_number) *version_number;
	__typeof__(peerreg_errstr)         *errstr;
	__typeof__(peerreg_open)           *open;
	__typeof__(peerreg_close)          *close;
	__typeof__(peerreg_register)       *register_;
	__typeof__(peerreg_unregister)     *unregister;
	__typeof__(peerreg_get)            *get;
	__typeof__(peerreg_list)           *list;
	__typeof__(peerreg_resolve)        *resolve;
	__typeof__(peerreg_set_health)     *set_health;
	__typeof__(peerreg_heartbeat)      *heartbeat;
	__typeof__(peerreg_prune)          *prune;
	__typeof__(peerreg_probe)          *probe;
	__typeof__(peerreg_watch_open)     *watch_open;
	__typeof__(peerreg_watch_fd)       *watch_fd;
	__typeof__(peerreg_watch_next)     *watch_next;
	__typeof__(peerreg_watch_close)    *watch_close;
	__typeof__(peerreg_free)           *free_;
	__typeof__(peerreg_error_code)     *error_code;
	__typeof__(peerreg_error_message)  *error_message;
	__typeof__(peerreg_error_free)     *error_free;
	// 0.2.0: looked up optionally (NULL when the library lacks them), so that a library
	// without them still serves everything else; the calls that need them say so.
	__typeof__(peerreg_resolve_scoped)      *resolve_scoped;
	__typeof__(peerreg_watch_open_filtered) *watch_open_filtered;
} pr_api;

// Written once, by pr_install, under the Go-side load mutex; only read afterwards.
static pr_api pr;

// dlopen's path and fills *api. Returns NULL on success, else a malloc'd message (free()).
// dlerror() is read in the same C call as the failure because its buffer is per thread and
// Go may move the goroutine to another thread between two cgo calls.
static char *pr_load(const char *path, pr_api *api) {
	memset(api, 0, sizeof *api);
	dlerror();
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *m = dlerror();
		return strdup(m != NULL ? m : "dlopen failed");
	}
	static const char *const prefix = "missing symbol ";
#define PR_SYM(field, name) do { \
		void *sym = dlsym(h, name); \
		if (sym == NULL) { \
			size_t n = strlen(prefix) + strlen(name) + 1; \
			char *m = malloc(n); \
			if (m != NULL) { strcpy(m, prefix); strcat(m, name); } \
			dlclose(h); \
			return m != NULL ? m : strdup(name); \
		} \
		memcpy(&api->field, &sym, sizeof sym); \
	} while (0)
	PR_SYM(version, "peerreg_version");
	PR_SYM(version_number, "peerreg_version_number");
	PR_SYM(errstr, "peerreg_errstr");
	PR_SYM(open, "peerreg_open");
	PR_SYM(close, "peerreg_close");
	PR_SYM(register_, "peerreg_register");
	PR_SYM(unregister, "peerreg_unregister");
	PR_SYM(get, "peerreg_get");
	PR_SYM(list, "peerreg_list");
	PR_SYM(resolve, "peerreg_resolve");
	PR_SYM(set_health, "peerreg_set_health");
	PR_SYM(heartbeat, "peerreg_heartbeat");
	PR_SYM(prune, "peerreg_prune");
	PR_SYM(probe, "peerreg_probe");
	PR_SYM(watch_open, "peerreg_watch_open");
	PR_SYM(watch_fd, "peerreg_watch_fd");
	PR_SYM(watch_next, "peerreg_watch_next");
	PR_SYM(watch_close, "peerreg_watch_close");
	PR_SYM(free_, "peerreg_free");
	PR_SYM(error_code, "peerreg_error_code");
	PR_SYM(error_message, "peerreg_error_message");
	PR_SYM(error_free, "peerreg_error_free");
#undef PR_SYM
#define PR_SYM_OPTIONAL(field, name) do { \
		void *sym = dlsym(h, name); \
		memcpy(&api->field, &sym, sizeof sym); \
	} while (0)
	PR_SYM_OPTIONAL(resolve_scoped, "peerreg_resolve_scoped");
	PR_SYM_OPTIONAL(watch_open_filtered, "peerreg_watch_open_filtered");
#undef PR_SYM_OPTIONAL
	api->handle = h;
	return NULL;
}

static void pr_install(const pr_api *api) { pr = *api; }

// The file the library was mapped from (what the system loader found for a bare soname), or
// NULL when the loader cannot say. Owned by the loader.
static const char *pr_api_file(const pr_api *api) {
	Dl_info info;
	void *sym;
	memcpy(&sym, &api->version, sizeof sym);
	if (dladdr(sym, &info) == 0 || info.dli_fname == NULL) return NULL;
	return info.dli_fname;
}
static int pr_api_version_number(const pr_api *api) { return api->version_number(); }

static const char *pr_version(void) { return pr.version(); }
static int pr_version_number(void) { return pr.version_number(); }
static const char *pr_errstr(int code) { return pr.errstr(code); }

// Every call that hands out a string also reports its length, so Go copies it with
// C.GoBytes instead of scanning for the NUL itself.
static size_t pr_len(const char *s) { return s != NULL ? strlen(s) : 0; }

static int pr_open(peerreg_registry **out, const char *path, peerreg_error **err) {
	return pr.open(out, path, err);
}
static void pr_close(peerreg_registry *reg) { pr.close(reg); }

static int pr_register(peerreg_registry *reg, const char *entry, char **out, size_t *n, peerreg_error **err) {
	int rc = pr.register_(reg, entry, out, err);
	*n = pr_len(*out);
	return rc;
}
static int pr_unregister(peerreg_registry *reg, const char *id, peerreg_error **err) {
	return pr.unregister(reg, id, err);
}
static int pr_get(peerreg_registry *reg, const char *id, char **out, size_t *n, peerreg_error **err) {
	int rc = pr.get(reg, id, out, err);
	*n = pr_len(*out);
	return rc;
}
static int pr_list(peerreg_registry *reg, const char *filter, char **out, size_t *n, peerreg_error **err) {
	int rc = pr.list(reg, filter, out, err);
	*n = pr_len(*out);
	return rc;
}
static int pr_resolve(peerreg_registry *reg, int kind, const char *name, char **out, size_t *n, peerreg_error **err) {
	int rc = pr.resolve(reg, kind, name, out, err);
	*n = pr_len(*out);
	return rc;
}
// 0 when the loaded library lacks peerreg_resolve_scoped (older than 0.2.0): the Go side
// then reports that instead of calling it.
static int pr_has_resolve_scoped(void) { return pr.resolve_scoped != NULL; }
static int pr_resolve_scoped(peerreg_registry *reg, int kind, const char *name, int scope, char **out, size_t *n, peerreg_error **err) {
	int rc = pr.resolve_scoped(reg, kind, name, scope, out, err);
	*n = pr_len(*out);
	return rc;
}
static int pr_set_health(peerreg_registry *reg, const char *id, int status, const char *msg, peerreg_error **err) {
	return pr.set_health(reg, id, status, msg, err);
}
static int pr_heartbeat(peerreg_registry *reg, const char *id, peerreg_error **err) {
	return pr.heartbeat(reg, id, err);
}
static int pr_prune(peerreg_registry *reg, int *removed, peerreg_error **err) {
	return pr.prune(reg, removed, err);
}
static int pr_probe(peerreg_registry *reg, const char *id, int timeout_ms, char **out, size_t *n, peerreg_error **err) {
	int rc = pr.probe(reg, id, timeout_ms, out, err);
	*n = pr_len(*out);
	return rc;
}
static int pr_watch_open(peerreg_watch **out, peerreg_registry *reg, peerreg_error **err) {
	return pr.watch_open(out, reg, err);
}
static int pr_has_watch_open_filtered(void) { return pr.watch_open_filtered != NULL; }
static int pr_watch_open_filtered(peerreg_watch **out, peerreg_registry *reg, const char *filter, peerreg_error **err) {
	return pr.watch_open_filtered(out, reg, filter, err);
}
static int pr_watch_next(peerreg_watch *w, int timeout_ms, char **out, size_t *n, peerreg_error **err) {
	int rc = pr.watch_next(w, timeout_ms, out, err);
	*n = pr_len(*out);
	return rc;
}
static void pr_watch_close(peerreg_watch *w) { pr.watch_close(w); }
static void pr_free(void *p) { pr.free_(p); }

// The code and message of e in one crossing; the message stays owned by e.
static const char *pr_error_parts(const peerreg_error *e, int *code) {
	*code = pr.error_code(e);
	return pr.error_message(e);
}
static void pr_error_free(peerreg_error *e) { pr.error_free(e); }
*/
import "C"

import (
	"unsafe"
)

// The Go constants mirror the header; each line below fails to compile (constant index out
// of range) if its two values differ.
var (
	_ = [1]int{}[HeaderVersionNumber-C.PEERREG_VERSION_NUMBER]
	_ = [1]int{}[CodeOK-C.PEERREG_OK]
	_ = [1]int{}[CodeInvalid-C.PEERREG_EINVAL]
	_ = [1]int{}[CodeNotFound-C.PEERREG_ENOTFOUND]
	_ = [1]int{}[CodeExists-C.PEERREG_EEXISTS]
	_ = [1]int{}[CodeCorrupt-C.PEERREG_ECORRUPT]
	_ = [1]int{}[CodeIO-C.PEERREG_EIO]
	_ = [1]int{}[CodePermission-C.PEERREG_EPERM]
	_ = [1]int{}[CodeTimeout-C.PEERREG_ETIMEOUT]
	_ = [1]int{}[CodeAmbiguous-C.PEERREG_EAMBIGUOUS]
	_ = [1]int{}[CodeLimit-C.PEERREG_ELIMIT]
	_ = [1]int{}[CodeClosed-C.PEERREG_ECLOSED]
	_ = [1]int{}[len(HeaderVersion)-len(C.PEERREG_VERSION)]
)

// headerVersionC is compared with HeaderVersion by a test (Go cannot compare strings at compile time).
const headerVersionC = C.PEERREG_VERSION

const (
	kindTool     = C.PEERREG_TOOL
	kindResource = C.PEERREG_RESOURCE
	kindPrompt   = C.PEERREG_PROMPT

	scopeLocal   = C.PEERREG_SCOPE_LOCAL
	scopeCluster = C.PEERREG_SCOPE_CLUSTER

	healthUnknown  = C.PEERREG_UNKNOWN
	healthHealthy  = C.PEERREG_HEALTHY
	healthDegraded = C.PEERREG_DEGRADED
	healthDown     = C.PEERREG_DOWN
)

type (
	cRegistry = C.peerreg_registry
	cWatch    = C.peerreg_watch
	cAPI      = C.pr_api
)

// cLoad dlopen's path into a fresh table. It does not install it.
func cLoad(path string) (*cAPI, string) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	api := new(cAPI)
	if msg := C.pr_load(cpath, api); msg != nil {
		defer C.free(unsafe.Pointer(msg))
		return nil, C.GoString(msg)
	}
	return api, ""
}

// cAPIFile is the file api was loaded from, "" when the loader cannot say.
func cAPIFile(api *cAPI) string {
	if f := C.pr_api_file(api); f != nil {
		return C.GoString(f)
	}
	return ""
}

func cInstall(api *cAPI)              { C.pr_install(api) }
func cAPIVersionNumber(api *cAPI) int { return int(C.pr_api_version_number(api)) }
func cVersion() string                { return C.GoString(C.pr_version()) }
func cVersionNumber() int             { return int(C.pr_version_number()) }
func cPointer(b []byte) *C.char       { return (*C.char)(unsafe.Pointer(&b[0])) }

// takeError turns a failed call into an *Error and frees the library's error object.
func takeError(rc C.int, e *C.peerreg_error) error {
	code := Code(rc)
	if e == nil { // not expected when err is passed; the library's static name then
		return &Error{Code: code, Message: C.GoString(C.pr_errstr(rc))}
	}
	var objCode C.int
	msg := C.GoString(C.pr_error_parts(e, &objCode))
	C.pr_error_free(e)
	if Code(objCode) != code {
		// The header promises the object carries the returned code; say so if it does not,
		// rather than silently picking one.
		msg += " (library error object says " + Code(objCode).String() + ")"
	}
	return &Error{Code: code, Message: msg}
}

// finish maps a result code, an out string and an error object to Go values, releasing
// everything the library handed out whatever the outcome.
func finish(rc C.int, out *C.char, n C.size_t, e *C.peerreg_error) ([]byte, error) {
	var data []byte
	if out != nil {
		data = C.GoBytes(unsafe.Pointer(out), C.int(n))
		C.pr_free(unsafe.Pointer(out))
	}
	if rc != C.PEERREG_OK {
		return nil, takeError(rc, e)
	}
	if e != nil { // not expected on success; never leak it
		C.pr_error_free(e)
	}
	return data, nil
}

func finishNoOut(rc C.int, e *C.peerreg_error) error {
	_, err := finish(rc, nil, 0, e)
	return err
}

func cOpen(path []byte) (*cRegistry, error) {
	var h *C.peerreg_registry
	var e *C.peerreg_error
	var p *C.char
	if path != nil {
		p = cPointer(path)
	}
	rc := C.pr_open(&h, p, &e)
	if err := finishNoOut(rc, e); err != nil {
		if h != nil { // out pointers are NULL on failure; be safe if not
			C.pr_close(h)
		}
		return nil, err
	}
	return h, nil
}

func cClose(h *cRegistry) { C.pr_close(h) }

func cRegister(h *cRegistry, entry []byte) ([]byte, error) {
	var out *C.char
	var n C.size_t
	var e *C.peerreg_error
	rc := C.pr_register(h, cPointer(entry), &out, &n, &e)
	return finish(rc, out, n, e)
}

func cUnregister(h *cRegistry, id []byte) error {
	var e *C.peerreg_error
	return finishNoOut(C.pr_unregister(h, cPointer(id), &e), e)
}

func cGet(h *cRegistry, id []byte) ([]byte, error) {
	var out *C.char
	var n C.size_t
	var e *C.peerreg_error
	rc := C.pr_get(h, cPointer(id), &out, &n, &e)
	return finish(rc, out, n, e)
}

func cList(h *cRegistry, filter []byte) ([]byte, error) {
	var out *C.char
	var n C.size_t
	var e *C.peerreg_error
	var f *C.char
	if filter != nil {
		f = cPointer(filter)
	}
	rc := C.pr_list(h, f, &out, &n, &e)
	return finish(rc, out, n, e)
}

func cResolve(h *cRegistry, kind int, name []byte) ([]byte, error) {
	var out *C.char
	var n C.size_t
	var e *C.peerreg_error
	rc := C.pr_resolve(h, C.int(kind), cPointer(name), &out, &n, &e)
	return finish(rc, out, n, e)
}

// cResolveScoped is peerreg_resolve_scoped; a library older than 0.2.0 lacks it.
func cResolveScoped(h *cRegistry, kind int, name []byte, scope int) ([]byte, error) {
	if C.pr_has_resolve_scoped() == 0 {
		return nil, errNeedsNewerLibrary("peerreg_resolve_scoped")
	}
	var out *C.char
	var n C.size_t
	var e *C.peerreg_error
	rc := C.pr_resolve_scoped(h, C.int(kind), cPointer(name), C.int(scope), &out, &n, &e)
	return finish(rc, out, n, e)
}

// cSetHealth passes a nil message as NULL ("no message").
func cSetHealth(h *cRegistry, id []byte, status int, message []byte) error {
	var e *C.peerreg_error
	var msg *C.char
	if message != nil {
		msg = cPointer(message)
	}
	return finishNoOut(C.pr_set_health(h, cPointer(id), C.int(status), msg, &e), e)
}

func cHeartbeat(h *cRegistry, id []byte) error {
	var e *C.peerreg_error
	return finishNoOut(C.pr_heartbeat(h, cPointer(id), &e), e)
}

func cPrune(h *cRegistry) (int, error) {
	var removed C.int
	var e *C.peerreg_error
	if err := finishNoOut(C.pr_prune(h, &removed, &e), e); err != nil {
		return 0, err
	}
	return int(removed), nil
}

func cProbe(h *cRegistry, id []byte, timeoutMS int) ([]byte, error) {
	var out *C.char
	var n C.size_t
	var e *C.peerreg_error
	rc := C.pr_probe(h, cPointer(id), C.int(timeoutMS), &out, &n, &e)
	return finish(rc, out, n, e)
}

func cWatchOpen(h *cRegistry) (*cWatch, error) {
	var w *C.peerreg_watch
	var e *C.peerreg_error
	if err := finishNoOut(C.pr_watch_open(&w, h, &e), e); err != nil {
		if w != nil {
			C.pr_watch_close(w)
		}
		return nil, err
	}
	return w, nil
}

// cWatchOpenFiltered is peerreg_watch_open_filtered; a library older than 0.2.0 lacks it.
func cWatchOpenFiltered(h *cRegistry, filter []byte) (*cWatch, error) {
	if C.pr_has_watch_open_filtered() == 0 {
		return nil, errNeedsNewerLibrary("peerreg_watch_open_filtered")
	}
	var w *C.peerreg_watch
	var e *C.peerreg_error
	if err := finishNoOut(C.pr_watch_open_filtered(&w, h, cPointer(filter), &e), e); err != nil {
		if w != nil {
			C.pr_watch_close(w)
		}
		return nil, err
	}
	return w, nil
}

// cWatchNext returns (nil, nil) when nothing changed within timeoutMS.
func cWatchNext(w *cWatch, timeoutMS int) ([]byte, error) {
	var out *C.char
	var n C.size_t
	var e *C.peerreg_error
	rc := C.pr_watch_next(w, C.int(timeoutMS), &out, &n, &e)
	if rc == C.PEERREG_ETIMEOUT {
		_, _ = finish(C.PEERREG_OK, out, n, e) // frees anything handed out anyway
		return nil, nil
	}
	return finish(rc, out, n, e)
}

func cWatchClose(w *cWatch) { C.pr_watch_close(w) }

// cGetOnClosedHandle checks the header's promise that a closed handle is looked up, not
// dereferenced: it opens a handle, closes it, and calls peerreg_get with the stale pointer,
// returning what the library said. Only the tests use it.
func cGetOnClosedHandle(path []byte) error {
	h, err := cOpen(path)
	if err != nil {
		return err
	}
	cClose(h)
	cClose(h) // a second close must be a no-op too
	_, err = cGet(h, []byte("anything\x00"))
	return err
}
