package peerregistry_test

// Cluster scope through the binding (docs/CLUSTER.md): list, resolve and watch of the other
// machines' entries, as bindings/python/tests/test_cluster_scope.py checks them. The cluster
// view is written here by hand in its documented format, with the agent lock held through
// flock as a running agent holds it; the real agent on a real etcd cluster is tested in
// tests/cluster.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

// writeView replaces the cluster view beside the registry file at registryPath the way the
// agent does (a temp file, mode 0600, renamed over the view).
func writeView(t *testing.T, registryPath string, etcd string, servers ...map[string]any) {
	t.Helper()
	if servers == nil {
		servers = []map[string]any{}
	}
	body, err := json.Marshal(map[string]any{"version": 1, "generation": 1, "node": "here", "etcd": etcd,
		"revision": 5, "servers": servers})
	if err != nil {
		t.Fatal(err)
	}
	view := filepath.Join(filepath.Dir(registryPath), "servers.cluster.json")
	tmp := view + ".tmp"
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, view); err != nil {
		t.Fatal(err)
	}
}

// remote is an entry of another node as the agent mirrors it.
func remote(id, node string, capabilities map[string][]string) map[string]any {
	return map[string]any{"id": id, "node": node, "url": fmt.Sprintf("http://10.0.0.9:%d/mcp", 9000+len(id)),
		"liveness": "none", "scope": "cluster", "capabilities": capabilities}
}

// holdAgentLock holds servers.cluster.json.agent as a running agent does, until the test ends:
// without it every remote entry is stale.
func holdAgentLock(t *testing.T, registryPath string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(filepath.Dir(registryPath), "servers.cluster.json.agent"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
}

// openCluster opens a fresh registry (created by the library before the view and the agent
// lock are put beside it) holding one local entry, "mine", that declares the tool "shared".
func openCluster(t *testing.T) (*peerregistry.Registry, string) {
	t.Helper()
	reg, path := openTemp(t)
	mustRegister(t, reg, peerregistry.Entry{ID: "mine", URL: "http://127.0.0.1:1/mcp", Liveness: peerregistry.LivenessNone,
		Capabilities: peerregistry.Capabilities{Tools: []string{"shared"}},
		Extra:        map[string]json.RawMessage{"scope": json.RawMessage(`"cluster"`)}})
	holdAgentLock(t, path)
	return reg, path
}

// extra is a field of e this package has no Go field for ("node", "stale"), as a string.
func extra(e peerregistry.Entry, key string) string {
	return string(e.Extra[key])
}

func TestResolveInClusterScope(t *testing.T) {
	reg, path := openCluster(t)
	writeView(t, path, "connected", remote("far", "B", map[string][]string{
		"tools": {"shared", "far-only"}, "prompts": {"far-prompt"}, "resources": {"resource://far/"}}))

	// Local scope, however it is asked for, never sees the other machine.
	_, err := reg.ResolveTool("far-only")
	wantCode(t, err, peerregistry.ErrNotFound)
	for _, scope := range []string{"", peerregistry.ScopeLocal} {
		_, err = reg.ResolveToolIn("far-only", scope)
		wantCode(t, err, peerregistry.ErrNotFound)
	}

	got, err := reg.ResolveToolIn("far-only", peerregistry.ScopeCluster)
	if err != nil || got.ID != "far" || extra(got, "node") != `"B"` {
		t.Fatalf(`ResolveToolIn(far-only, cluster) = %s node %s, %v; want far on node "B"`, got.ID, extra(got, "node"), err)
	}
	if got.Extra["stale"] != nil {
		t.Errorf("far is stale with the agent lock held: %s", got.Extra["stale"])
	}
	// Equal health (both UNKNOWN): the local server wins the tie, and carries no node.
	got, err = reg.ResolveToolIn("shared", peerregistry.ScopeCluster)
	if err != nil || got.ID != "mine" || got.Extra["node"] != nil {
		t.Fatalf("ResolveToolIn(shared, cluster) = %s node %s, %v; want the local mine", got.ID, extra(got, "node"), err)
	}
	if got, err = reg.ResolvePromptIn("far-prompt", peerregistry.ScopeCluster); err != nil || got.ID != "far" {
		t.Fatalf("ResolvePromptIn(far-prompt, cluster) = %s, %v", got.ID, err)
	}
	if got, err = reg.ResolveResourceIn("resource://far/x", peerregistry.ScopeCluster); err != nil || got.ID != "far" {
		t.Fatalf("ResolveResourceIn(resource://far/x, cluster) = %s, %v", got.ID, err)
	}
	_, err = reg.ResolvePromptIn("far-prompt", peerregistry.ScopeLocal)
	wantCode(t, err, peerregistry.ErrNotFound)
}

func TestResolveInBadScopeIsInvalid(t *testing.T) {
	reg, path := openCluster(t)
	writeView(t, path, "connected", remote("far", "B", map[string][]string{"tools": {"far-only"}}))
	for _, scope := range []string{"galaxy", "Cluster", "LOCAL", " cluster"} {
		_, err := reg.ResolveToolIn("shared", scope)
		perr := wantCode(t, err, peerregistry.ErrInvalid)
		if want := fmt.Sprintf("scope %q", scope); !strings.Contains(perr.Message, want) {
			t.Errorf("ResolveToolIn(shared, %q): message %q does not name the scope", scope, perr.Message)
		}
		_, err = reg.ResolveResourceIn("resource://far/x", scope)
		wantCode(t, err, peerregistry.ErrInvalid)
		_, err = reg.List(peerregistry.Filter{Scope: scope})
		wantCode(t, err, peerregistry.ErrInvalid)
	}
	// Nothing changed.
	res, err := reg.List(peerregistry.Filter{})
	if err != nil || len(res.Servers) != 1 || res.Servers[0].ID != "mine" {
		t.Fatalf("List after bad scopes = %v, %v", ids(res.Servers), err)
	}
}

func TestListWithClusterScope(t *testing.T) {
	reg, path := openCluster(t)
	writeView(t, path, "connected", remote("far", "B", map[string][]string{"tools": {"t"}}),
		remote("mine", "C", map[string][]string{"tools": {"t"}})) // the same id on another node
	res, err := reg.List(peerregistry.Filter{})
	if err != nil || len(res.Servers) != 1 {
		t.Fatalf("List(local) = %v, %v; want only mine", ids(res.Servers), err)
	}
	res, err = reg.List(peerregistry.Filter{Scope: peerregistry.ScopeCluster})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range res.Servers {
		got = append(got, e.ID+"@"+extra(e, "node")+extra(e, "stale"))
	}
	if fmt.Sprint(got) != `[mine@ far@"B" mine@"C"]` {
		t.Fatalf("List(cluster) = %v; want the local entry first, then the remote ones, none stale", got)
	}
}

func TestRemoteEntriesAreStaleWithoutARunningAgent(t *testing.T) {
	reg, path := openTemp(t)
	writeView(t, path, "connected", remote("far", "B", map[string][]string{"tools": {"t"}}))
	got, err := reg.ResolveToolIn("t", peerregistry.ScopeCluster)
	if err != nil || got.ID != "far" || extra(got, "stale") != "true" {
		t.Fatalf("ResolveToolIn(t, cluster) without an agent = %s stale %s, %v; want far, stale", got.ID, extra(got, "stale"), err)
	}
}

func TestWatchFilteredClusterScopeSeesRemoteEntries(t *testing.T) {
	reg, path := openCluster(t)
	ctx := context.Background()
	local, err := reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	cluster, err := reg.WatchFiltered(ctx, peerregistry.Filter{Scope: peerregistry.ScopeCluster})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	writeView(t, path, "connected", remote("far", "B", map[string][]string{"tools": {"shared", "far-only"}}))
	ev := nextEvent(t, cluster, eventTimeout)
	if len(ev.Added) != 1 || ev.Added[0].ID != "far" || extra(ev.Added[0], "node") != `"B"` {
		t.Fatalf("cluster watch: first event added %v, want far on node B", ids(ev.Added))
	}

	// The local watch does not report the remote entry: the first thing it sees is a local
	// registration made after the view was written.
	mustRegister(t, reg, peerregistry.Entry{ID: "later", URL: "http://127.0.0.1:2/mcp", Liveness: peerregistry.LivenessNone})
	for {
		ev := nextEvent(t, local, eventTimeout)
		for _, list := range [][]peerregistry.Entry{ev.Added, ev.Changed, ev.Removed} {
			for _, e := range list {
				if e.ID == "far" || e.Extra["node"] != nil {
					t.Fatalf("local watch reported the remote entry %s: %+v", e.ID, ev)
				}
			}
		}
		if hasID(ev.Added, "later") {
			break
		}
	}
	// The cluster watch sees local changes too, and a remote entry leaving.
	waitForEvent(t, cluster, eventTimeout, func(ev peerregistry.Event) bool { return hasID(ev.Added, "later") })
	writeView(t, path, "connected")
	ev = waitForEvent(t, cluster, eventTimeout, func(ev peerregistry.Event) bool { return len(ev.Removed) > 0 })
	if len(ev.Removed) != 1 || ev.Removed[0].ID != "far" {
		t.Fatalf("cluster watch removed %v, want far", ids(ev.Removed))
	}
}

func TestWatchFilteredByTool(t *testing.T) {
	reg, _ := openTemp(t)
	w, err := reg.WatchFiltered(context.Background(), peerregistry.Filter{Tool: "wanted"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mustRegister(t, reg, peerregistry.Entry{ID: "other", URL: "http://127.0.0.1:1/mcp",
		Capabilities: peerregistry.Capabilities{Tools: []string{"unwanted"}}})
	mustRegister(t, reg, peerregistry.Entry{ID: "match", URL: "http://127.0.0.1:2/mcp",
		Capabilities: peerregistry.Capabilities{Tools: []string{"wanted"}}})
	ev := nextEvent(t, w, eventTimeout)
	if len(ev.Added) != 1 || ev.Added[0].ID != "match" {
		t.Fatalf("filtered watch added %v, want only match", ids(ev.Added))
	}
	// Re-registering it without the tool makes it stop matching: removed.
	mustRegister(t, reg, peerregistry.Entry{ID: "match", URL: "http://127.0.0.1:2/mcp"})
	ev = nextEvent(t, w, eventTimeout)
	if len(ev.Removed) != 1 || ev.Removed[0].ID != "match" || len(ev.Added)+len(ev.Changed) != 0 {
		t.Fatalf("after match lost the tool: %+v, want match removed", ev)
	}
}

func TestWatchFilteredBadFilterIsInvalid(t *testing.T) {
	reg, _ := openTemp(t)
	for _, f := range []peerregistry.Filter{{Scope: "galaxy"}, {Status: "SPARKLING"}} {
		w, err := reg.WatchFiltered(context.Background(), f)
		if w != nil {
			w.Close()
		}
		wantCode(t, err, peerregistry.ErrInvalid)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := reg.WatchFiltered(ctx, peerregistry.Filter{Scope: peerregistry.ScopeCluster}); err != context.Canceled {
		t.Fatalf("WatchFiltered with a cancelled context = %v, want context.Canceled", err)
	}
	reg.Close()
	_, err := reg.WatchFiltered(context.Background(), peerregistry.Filter{Scope: peerregistry.ScopeCluster})
	wantCode(t, err, peerregistry.ErrClosed)
	_, err = reg.ResolveToolIn("x", peerregistry.ScopeCluster)
	wantCode(t, err, peerregistry.ErrClosed)
}

// A library that lacks the 0.2.0 functions (peerreg_resolve_scoped, peerreg_watch_open_filtered)
// still loads, since they are looked up optionally; the calls that need them are ErrInvalid
// saying so, and the rest work. The stand-in reports the header's version (an older one is
// refused at load, see TestCheckVersion) and answers every resolve with the entry "fake".
func TestClusterCallsOnALibraryWithoutThem(t *testing.T) {
	dir := t.TempDir()
	source := filepath.Join(dir, "fake.c")
	var b strings.Builder
	fmt.Fprintf(&b, "const char *peerreg_version(void) { return \"0.2.0-fake\"; }\n")
	fmt.Fprintf(&b, "int peerreg_version_number(void) { return %d; }\n", peerregistry.HeaderVersionNumber)
	b.WriteString(`static int handle;
int peerreg_open(void **out, const char *path, void **err) { *out = &handle; if (err) *err = 0; return 0; }
static char entry[] = "{\"id\":\"fake\",\"url\":\"http://127.0.0.1:1/mcp\"}";
int peerreg_resolve(void *reg, int kind, const char *name, char **out, void **err) { *out = entry; if (err) *err = 0; return 0; }
void peerreg_free(void *p) { (void)p; }
`)
	for _, name := range []string{"close", "errstr", "register", "unregister", "get", "list", "set_health",
		"heartbeat", "prune", "probe", "watch_open", "watch_fd", "watch_next", "watch_close",
		"error_code", "error_message", "error_free"} {
		fmt.Fprintf(&b, "int peerreg_%s(void) { return 0; }\n", name)
	}
	if err := os.WriteFile(source, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	library := filepath.Join(dir, "libfake.so")
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if out, err := exec.Command(cc, "-shared", "-fPIC", source, "-o", library).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, out)
	}
	cmd := helperCommand(t, "without-cluster", helperExplicitEnv+"="+library,
		"PEER_REGISTRY_PATH="+filepath.Join(dir, "servers.json"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 {
		t.Fatalf("helper printed %q", out)
	}
	for i, symbol := range []string{"peerreg_resolve_scoped", "peerreg_watch_open_filtered"} {
		want := fmt.Sprintf(`{"Code":-1,"Message":"%s needs libpeerregistry \u003e= 0.2.0; the library loaded from %s is 0.2.0-fake"}`, symbol, library)
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d: %q, want the error %s", i, lines[i], want)
		}
	}
	if !strings.HasPrefix(lines[2], "resolve-local:fake null") || !strings.HasPrefix(lines[3], "resolve:fake null") {
		t.Errorf("the local resolves did not reach the library's peerreg_resolve: %q", lines[2:])
	}
}
