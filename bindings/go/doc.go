// Package peerregistry is the Go binding of peer-registry: local MCP servers announce
// themselves in one shared registry file, and clients find them by id, by capability, or by
// watching for changes. All reading, locking, writing, validation and pruning happens in
// libpeerregistry (through its C ABI, peer_registry.h); this package is a thin skin
// over it with Go types.
//
// A server registers itself after it is listening, and stays registered while its Registry is
// open and its process lives (the default "lease" liveness: however the process dies, its
// entry disappears):
//
//	reg, err := peerregistry.Open("") // $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json
//	if err != nil { ... }
//	defer reg.Close() // unregisters; also keeps reg reachable, see Registry
//	_, err = reg.Register(ctx, peerregistry.Entry{
//		ID:  "journey-service",
//		URL: "http://127.0.0.1:8080/mcp",
//		Capabilities: peerregistry.Capabilities{Tools: []string{"findTrips"}},
//	})
//
// A client finds it:
//
//	e, err := reg.ResolveTool("findTrips")
//	if errors.Is(err, peerregistry.ErrNotFound) { ... }
//
// With the cluster agent running (docs/CLUSTER.md), ScopeCluster reaches the other machines'
// servers too: List(Filter{Scope: ScopeCluster}), ResolveToolIn(name, ScopeCluster),
// WatchFiltered(ctx, Filter{Scope: ScopeCluster}).
//
// # Loading the library
//
// libpeerregistry.so is loaded at run time (dlopen), once per process, by the rule all three
// bindings share (docs/ABI.md, "Finding the library"):
//
//  1. the path given to LoadLibrary or Options.Library — if given, the only place tried;
//  2. $PEER_REGISTRY_LIB — if set, the only place tried;
//  3. (the copy a package ships: a Go module is source and ships none);
//  4. libpeerregistry.so.0 through the system loader (ld.so's search path).
//
// Nothing guesses where a repository or a build is. A place that is configured (1, 2) but
// cannot be used — not a shared library, a missing symbol, an incompatible version — is an
// error, never a reason to load another build instead. The *LoadError names each place tried
// and why it failed. The library must have the major version of the header this package was
// built with (HeaderVersion) and at least its minor version. The package compiles against its
// own copy of the header (peer_registry.h), so the module works copied anywhere; building
// needs cgo, not the library.
//
// # Errors
//
// Failures are *Error values with a Code; compare them with errors.Is against ErrNotFound,
// ErrExists, ErrCorrupt and the other sentinels.
//
// # Contexts
//
// Methods that write (Register, Unregister, SetHealth, Heartbeat, Prune, Probe) may wait for the
// registry's file lock; the library bounds that wait itself (then ErrTimeout) and cannot be
// interrupted. They check ctx before calling the library and return ctx.Err() if it is done;
// a call that has started runs to completion and returns its real result, because a write
// reported as cancelled could still become durable. Watch stops when its ctx is done.
package peerregistry
