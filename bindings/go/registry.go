package peerregistry

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Registry is an open handle on one registry file. It is safe for concurrent use by any
// number of goroutines.
//
// Entries registered with lease liveness (the default) stay registered while the Registry is
// open: Close unregisters them, and so does the finalizer if the Registry becomes
// unreachable. A server must therefore keep its Registry reachable (for example with
// `defer reg.Close()` in main) for as long as it wants to be found.
type Registry struct {
	// mu is held shared by every call into the library and exclusively by Close, so Close
	// waits for calls in progress and no call ever sees a freed handle.
	mu     sync.RWMutex
	handle *cRegistry // nil once closed
}

// Options configures OpenWith.
type Options struct {
	// Path is the registry file; "" means $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json.
	Path string
	// Library is the path of libpeerregistry.so to load; "" means the usual lookup
	// ($PEER_REGISTRY_LIB, the system loader).
	Library string
}

// Open opens the registry file at path ("" for the default location), creating its
// directory (0700) if needed. It fails with ErrPermission when the directory or file is owned
// by another user, writable by group or others, a symlink or hard-linked. A corrupt file does
// not fail Open: reads and writes report ErrCorrupt instead.
func Open(path string) (*Registry, error) {
	return OpenWith(Options{Path: path})
}

// OpenWith is Open with the library's location given explicitly.
func OpenWith(opts Options) (*Registry, error) {
	if err := ensureLoaded(opts.Library); err != nil {
		return nil, err
	}
	var cpath []byte
	if opts.Path != "" {
		var err error
		if cpath, err = cString("path", opts.Path); err != nil {
			return nil, err
		}
	}
	h, err := cOpen(cpath)
	if err != nil {
		return nil, err
	}
	r := &Registry{handle: h}
	runtime.SetFinalizer(r, (*Registry).Close)
	return r, nil
}

// Close unregisters the entries this Registry registered with lease liveness, releases its
// leases and frees the handle, after any calls in progress finish. Watchers opened from it
// keep working. Closing again is a no-op; every other method then returns ErrClosed.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handle != nil {
		cClose(r.handle)
		r.handle = nil
		runtime.SetFinalizer(r, nil)
	}
	return nil
}

// call runs fn with the live handle, or returns ErrClosed.
func (r *Registry) call(fn func(h *cRegistry) error) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.handle == nil {
		return &Error{Code: CodeClosed, Message: "registry is closed"}
	}
	err := fn(r.handle)
	runtime.KeepAlive(r)
	return err
}

// Context: the library's writes block on the registry's file lock (bounded by the library's
// own lock timeout, after which they fail with ErrTimeout) and cannot be interrupted. The
// methods taking a context check it before starting and return ctx.Err() without calling the
// library if it is already done. Once started, a call runs to completion and its real result
// is returned: abandoning it would report a failure for a write that may still become
// durable (and, for Register, leave a lease held that nobody knows about).

// Register adds or (when this Registry registered the same id) replaces a server and returns
// the entry as stored, with the library's defaults filled in. ID and URL are required.
// ErrExists: another live registrant holds the id. The write is durable when it returns.
func (r *Registry) Register(ctx context.Context, e Entry) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return Entry{}, err
	}
	var out []byte
	err = r.call(func(h *cRegistry) (err error) {
		out, err = cRegister(h, append(body, 0))
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	return decodeEntry(out)
}

// Unregister removes the entry id, whatever its liveness, and releases its lease if this
// Registry held it. ErrNotFound when there is no such entry.
func (r *Registry) Unregister(ctx context.Context, id string) error {
	return r.writeID(ctx, id, cUnregister)
}

// Heartbeat sets the entry's lastSeen to now, which keeps a LivenessTTL entry alive.
func (r *Registry) Heartbeat(ctx context.Context, id string) error {
	return r.writeID(ctx, id, cHeartbeat)
}

func (r *Registry) writeID(ctx context.Context, id string, fn func(*cRegistry, []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cid, err := cString("id", id)
	if err != nil {
		return err
	}
	return r.call(func(h *cRegistry) error { return fn(h, cid) })
}

// SetHealth records the health reported for id and sets health.lastCheck to now.
// An empty message is recorded as no message. ErrNotFound when there is no live entry id.
func (r *Registry) SetHealth(ctx context.Context, id string, status HealthStatus, message string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cid, err := cString("id", id)
	if err != nil {
		return err
	}
	var cmsg []byte // an empty message is passed as NULL: no message
	if message != "" {
		if cmsg, err = cString("message", message); err != nil {
			return err
		}
	}
	return r.call(func(h *cRegistry) error { return cSetHealth(h, cid, status.code(), cmsg) })
}

// Prune removes every dead entry and orphaned lease file now and returns how many entries it
// removed. Writers prune anyway; this is for tools and tests.
func (r *Registry) Prune(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var removed int
	err := r.call(func(h *cRegistry) (err error) {
		removed, err = cPrune(h)
		return err
	})
	return removed, err
}

// Probe checks the live entry id by its transport as peerreg_probe does — MCP over HTTP for
// http and sse, a TCP connect for ws (peer_registry.h says exactly what) — and records the outcome: success makes it HEALTHY;
// consecutive failures (Health.ConsecutiveFailures) make it DEGRADED after 1 and DOWN after 3.
// It returns the entry as stored afterwards. A failed probe is not an error: it is recorded.
// ErrNotFound when there is no live entry id.
//
// The probe waits up to timeout (0: the library's default, 2 s), shortened to ctx's deadline
// when that comes sooner, plus one write.
func (r *Registry) Probe(ctx context.Context, id string, timeout time.Duration) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	cid, err := cString("id", id)
	if err != nil {
		return Entry{}, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if timeout <= 0 || left < timeout {
			timeout = left
		}
		if timeout < time.Millisecond {
			timeout = time.Millisecond
		}
	}
	ms := int(timeout / time.Millisecond)
	if timeout > time.Duration(math.MaxInt32)*time.Millisecond {
		ms = math.MaxInt32
	}
	var out []byte
	err = r.call(func(h *cRegistry) (err error) {
		out, err = cProbe(h, cid, ms)
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	return decodeEntry(out)
}

// Get returns the live entry id. ErrNotFound when it is missing or its owner is gone.
// Reads take no lock and cost a stat when the file has not changed.
func (r *Registry) Get(id string) (Entry, error) {
	cid, err := cString("id", id)
	if err != nil {
		return Entry{}, err
	}
	var out []byte
	err = r.call(func(h *cRegistry) (err error) {
		out, err = cGet(h, cid)
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	return decodeEntry(out)
}

// List returns the live entries matching f (the zero Filter matches all) and the file
// generation they were read at.
func (r *Registry) List(f Filter) (ListResult, error) {
	filter, err := filterJSON(f)
	if err != nil {
		return ListResult{}, err
	}
	var out []byte
	err = r.call(func(h *cRegistry) (err error) {
		out, err = cList(h, filter)
		return err
	})
	if err != nil {
		return ListResult{}, err
	}
	var res ListResult
	if err := json.Unmarshal(out, &res); err != nil {
		return ListResult{}, decodeError(err)
	}
	return res, nil
}

// filterJSON is f as a NUL-terminated peerreg_list filter, nil (no filter) for the zero Filter.
func filterJSON(f Filter) ([]byte, error) {
	if f == (Filter{}) {
		return nil, nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	return append(b, 0), nil
}

// The scopes of ResolveToolIn, ResolvePromptIn, ResolveResourceIn and Filter.Scope
// (library 0.2.0; docs/CLUSTER.md). They are untyped, so they fit Filter.Scope as they are.
const (
	// ScopeLocal is this machine's registry only: the default, also spelled "".
	ScopeLocal = "local"
	// ScopeCluster adds the other machines' entries, mirrored by `peer-registry agent` into
	// the cluster view beside the registry file. A remote entry carries "node" (and
	// "stale": true while this machine's agent has lost etcd or is not running) in Entry.Extra.
	ScopeCluster = "cluster"
)

// ResolveTool returns the one live server handling tool name: "server.tool" names the server;
// a bare name goes to the one server declaring it, preferring HEALTHY over DEGRADED over
// UNKNOWN. ErrAmbiguous on a tie (the message lists the candidates), ErrNotFound when none.
func (r *Registry) ResolveTool(name string) (Entry, error) {
	return r.resolve(kindTool, name, ScopeLocal)
}

// ResolvePrompt is ResolveTool for prompts.
func (r *Registry) ResolvePrompt(name string) (Entry, error) {
	return r.resolve(kindPrompt, name, ScopeLocal)
}

// ResolveResource returns the server declaring uri exactly, else the longest declared prefix
// of it. ErrNotFound when none.
func (r *Registry) ResolveResource(uri string) (Entry, error) {
	return r.resolve(kindResource, uri, ScopeLocal)
}

// ResolveToolIn is ResolveTool within scope: ScopeLocal ("" too) is ResolveTool; ScopeCluster
// also considers the other machines' servers (docs/CLUSTER.md) — health first, then, at equal
// health, a local server over a remote one and a fresh remote one over a stale one;
// "server.tool" names a local id first. A remote result carries "node" in Extra. Any other
// scope is ErrInvalid, and nothing is looked up. Cluster scope needs libpeerregistry >= 0.2.0.
func (r *Registry) ResolveToolIn(name, scope string) (Entry, error) {
	return r.resolve(kindTool, name, scope)
}

// ResolvePromptIn is ResolvePrompt within scope, as ResolveToolIn.
func (r *Registry) ResolvePromptIn(name, scope string) (Entry, error) {
	return r.resolve(kindPrompt, name, scope)
}

// ResolveResourceIn is ResolveResource within scope, as ResolveToolIn.
func (r *Registry) ResolveResourceIn(uri, scope string) (Entry, error) {
	return r.resolve(kindResource, uri, scope)
}

// scopeCode maps a scope name to PEERREG_SCOPE_*; anything else is ErrInvalid here, since the
// C ABI takes an int and a string has no int to pass on.
func scopeCode(scope string) (int, error) {
	switch scope {
	case "", ScopeLocal:
		return scopeLocal, nil
	case ScopeCluster:
		return scopeCluster, nil
	}
	return 0, &Error{Code: CodeInvalid, Message: fmt.Sprintf("scope %q: use %q or %q", scope, ScopeLocal, ScopeCluster)}
}

func (r *Registry) resolve(kind int, name, scope string) (Entry, error) {
	sc, err := scopeCode(scope)
	if err != nil {
		return Entry{}, err
	}
	cname, err := cString("name", name)
	if err != nil {
		return Entry{}, err
	}
	var out []byte
	err = r.call(func(h *cRegistry) (err error) {
		if sc == scopeLocal { // peerreg_resolve: every library has it
			out, err = cResolve(h, kind, cname)
		} else {
			out, err = cResolveScoped(h, kind, cname, sc)
		}
		return err
	})
	if err != nil {
		return Entry{}, err
	}
	return decodeEntry(out)
}

func decodeEntry(b []byte) (Entry, error) {
	var e Entry
	if err := e.UnmarshalJSON(b); err != nil {
		return Entry{}, decodeError(err)
	}
	return e, nil
}

// decodeError reports JSON from the library that this package cannot read: a version
// mismatch or a library bug, never the caller's fault.
func decodeError(err error) error {
	return fmt.Errorf("peerregistry: cannot decode the library's JSON: %w", err)
}

// cString returns s NUL-terminated for C. A NUL inside s would silently cut it short, so it
// is refused instead.
func cString(what, s string) ([]byte, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, &Error{Code: CodeInvalid, Message: what + " contains a NUL byte"}
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b, nil
}
