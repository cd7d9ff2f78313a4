package peerregistry_test

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

func TestVersionMatchesHeader(t *testing.T) {
	v, err := peerregistry.Version()
	if err != nil {
		t.Fatal(err)
	}
	n, err := peerregistry.VersionNumber()
	if err != nil {
		t.Fatal(err)
	}
	if v != peerregistry.HeaderVersion || n != peerregistry.HeaderVersionNumber {
		t.Fatalf("library %s (%d), header %s (%d)", v, n, peerregistry.HeaderVersion, peerregistry.HeaderVersionNumber)
	}
	if peerregistry.LibraryPath() == "" {
		t.Fatal("LibraryPath is empty after loading")
	}
}

func TestRegisterFillsDefaultsAndKeepsEverything(t *testing.T) {
	reg, _ := openTemp(t)
	before := time.Now().Add(-2 * time.Second)
	in := peerregistry.Entry{
		ID:   "journey-service",
		Name: "Journey Service",
		URL:  "http://127.0.0.1:8080/mcp",
		Port: 8080,
		Capabilities: peerregistry.Capabilities{
			Tools:     []string{"findTrips", "compareRoutes"},
			Resources: []string{"resource://journey/"},
			Prompts:   []string{"plan-trip"},
		},
		RequiresSession: true,
		Metadata:        map[string]any{"owner": "team-a", "weight": 3.5, "tags": []any{"x", "y"}},
		Extra:           map[string]json.RawMessage{"futureField": json.RawMessage(`{"nested":[1,2,{"k":"v"}]}`)},
	}
	stored := mustRegister(t, reg, in)

	if stored.ID != in.ID || stored.Name != in.Name || stored.URL != in.URL || stored.Port != 8080 {
		t.Errorf("stored identity fields differ: %+v", stored)
	}
	// Defaults the header promises: liveness lease, pid = the caller's, startedAt = now,
	// health UNKNOWN, transport from the URL scheme.
	if stored.Liveness != peerregistry.LivenessLease {
		t.Errorf("liveness = %q, want lease", stored.Liveness)
	}
	if stored.PID != os.Getpid() {
		t.Errorf("pid = %d, want %d", stored.PID, os.Getpid())
	}
	if stored.StartedAt.Before(before) || stored.StartedAt.After(time.Now().Add(2*time.Second)) {
		t.Errorf("startedAt = %v, want about now", stored.StartedAt)
	}
	if stored.Health.Status != peerregistry.StatusUnknown {
		t.Errorf("health.status = %q, want UNKNOWN", stored.Health.Status)
	}
	if stored.Transport != peerregistry.TransportHTTP {
		t.Errorf("transport = %q, want http", stored.Transport)
	}
	if !reflect.DeepEqual(stored.Capabilities.Tools, in.Capabilities.Tools) ||
		!reflect.DeepEqual(stored.Capabilities.Resources, in.Capabilities.Resources) ||
		!reflect.DeepEqual(stored.Capabilities.Prompts, in.Capabilities.Prompts) {
		t.Errorf("capabilities = %+v, want %+v", stored.Capabilities, in.Capabilities)
	}
	if !stored.RequiresSession {
		t.Error("requiresSession lost")
	}
	if !reflect.DeepEqual(stored.Metadata, in.Metadata) {
		t.Errorf("metadata = %#v, want %#v", stored.Metadata, in.Metadata)
	}
	// An unknown field survives the trip through the library and the file.
	assertJSONEqual(t, stored.Extra["futureField"], in.Extra["futureField"])

	got, err := reg.Get("journey-service")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, stored) {
		t.Errorf("Get differs from Register's result:\n got  %+v\n want %+v", got, stored)
	}
}

func TestExtraFieldsSurviveAnotherHandlesRewrite(t *testing.T) {
	reg, path := openTemp(t)
	mustRegister(t, reg, peerregistry.Entry{
		ID: "keeper", URL: "http://127.0.0.1:1/mcp", Liveness: peerregistry.LivenessNone,
		Extra: map[string]json.RawMessage{"x-newer-writer": json.RawMessage(`"kept"`)},
	})
	other := openAt(t, path)
	// Another registrant's writes rewrite the whole file.
	mustRegister(t, other, peerregistry.Entry{ID: "other", URL: "http://127.0.0.1:2/mcp"})
	if err := other.Unregister(context.Background(), "other"); err != nil {
		t.Fatal(err)
	}
	got, err := other.Get("keeper")
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, got.Extra["x-newer-writer"], json.RawMessage(`"kept"`))
}

func TestRegisterReplacesOwnEntry(t *testing.T) {
	reg, _ := openTemp(t)
	mustRegister(t, reg, peerregistry.Entry{ID: "svc", Name: "first", URL: "http://127.0.0.1:1/mcp"})
	mustRegister(t, reg, peerregistry.Entry{ID: "svc", Name: "second", URL: "ws://127.0.0.1:2/mcp"})
	got, err := reg.Get("svc")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "second" || got.URL != "ws://127.0.0.1:2/mcp" || got.Transport != peerregistry.TransportWS {
		t.Fatalf("replacement not stored: %+v", got)
	}
	res, err := reg.List(peerregistry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Servers) != 1 {
		t.Fatalf("replace left %d entries: %v", len(res.Servers), ids(res.Servers))
	}
}

func TestUnregister(t *testing.T) {
	reg, _ := openTemp(t)
	ctx := context.Background()
	mustRegister(t, reg, peerregistry.Entry{ID: "gone-soon", URL: "http://127.0.0.1:1/mcp"})
	if err := reg.Unregister(ctx, "gone-soon"); err != nil {
		t.Fatal(err)
	}
	_, err := reg.Get("gone-soon")
	wantCode(t, err, peerregistry.ErrNotFound)
	wantCode(t, reg.Unregister(ctx, "gone-soon"), peerregistry.ErrNotFound)
	// The id is free again, for anyone.
	mustRegister(t, reg, peerregistry.Entry{ID: "gone-soon", URL: "http://127.0.0.1:1/mcp"})
}

// What the filters select and how resolution and TTL expiry behave are the core's, checked in
// every language by tests/conformance/cases.json (TestConformance); here: what this package
// passes along.
func TestFilterFieldsReachTheLibrary(t *testing.T) {
	reg, _ := openTemp(t)
	ctx := context.Background()
	mustRegister(t, reg, peerregistry.Entry{ID: "a", URL: "http://127.0.0.1:1/mcp",
		Capabilities: peerregistry.Capabilities{Tools: []string{"t"}, Prompts: []string{"p"}, Resources: []string{"resource://a/"}}})
	mustRegister(t, reg, peerregistry.Entry{ID: "b", URL: "ws://127.0.0.1:2/mcp"})
	if err := reg.SetHealth(ctx, "a", peerregistry.StatusHealthy, ""); err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	for _, tc := range []struct {
		filter peerregistry.Filter
		want   []string
	}{
		{peerregistry.Filter{}, []string{"a", "b"}},
		{peerregistry.Filter{Healthy: &yes}, []string{"a"}},
		{peerregistry.Filter{Healthy: &no}, []string{"b"}},
		{peerregistry.Filter{Status: peerregistry.StatusHealthy}, []string{"a"}},
		{peerregistry.Filter{Transport: peerregistry.TransportWS}, []string{"b"}},
		{peerregistry.Filter{Tool: "t", Prompt: "p", Resource: "resource://a/x"}, []string{"a"}},
		{peerregistry.Filter{Tool: "nobody"}, []string{}},
	} {
		res, err := reg.List(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(res.Servers); !reflect.DeepEqual(append([]string{}, got...), tc.want) {
			t.Errorf("List(%+v) = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func TestResolveMethodsPassTheirKind(t *testing.T) {
	reg, _ := openTemp(t)
	mustRegister(t, reg, peerregistry.Entry{ID: "a", URL: "http://127.0.0.1:1/mcp",
		Capabilities: peerregistry.Capabilities{Tools: []string{"x"}}})
	mustRegister(t, reg, peerregistry.Entry{ID: "b", URL: "http://127.0.0.1:2/mcp",
		Capabilities: peerregistry.Capabilities{Prompts: []string{"x"}, Resources: []string{"x"}}})
	for name, resolve := range map[string]func(string) (peerregistry.Entry, error){
		"a": reg.ResolveTool, "b": reg.ResolvePrompt,
	} {
		if e, err := resolve("x"); err != nil || e.ID != name {
			t.Errorf("resolved %q, %v; want %s", e.ID, err, name)
		}
	}
	if e, err := reg.ResolveResource("x"); err != nil || e.ID != "b" {
		t.Errorf("ResolveResource = %q, %v; want b", e.ID, err)
	}
	_, err := reg.ResolveTool("nothing")
	wantCode(t, err, peerregistry.ErrNotFound)
}

func TestSetHealth(t *testing.T) {
	reg, _ := openTemp(t)
	ctx := context.Background()
	mustRegister(t, reg, peerregistry.Entry{ID: "svc", URL: "http://127.0.0.1:1/mcp"})
	before := time.Now().Add(-2 * time.Second)
	if err := reg.SetHealth(ctx, "svc", peerregistry.StatusDegraded, "disk 91% full"); err != nil {
		t.Fatal(err)
	}
	got, err := reg.Get("svc")
	if err != nil {
		t.Fatal(err)
	}
	if got.Health.Status != peerregistry.StatusDegraded || got.Health.Message != "disk 91% full" {
		t.Errorf("health = %+v", got.Health)
	}
	if got.Health.LastCheck.Before(before) {
		t.Errorf("lastCheck = %v, want about now", got.Health.LastCheck)
	}
	if err := reg.SetHealth(ctx, "svc", peerregistry.StatusHealthy, ""); err != nil {
		t.Fatal(err)
	}
	got, _ = reg.Get("svc")
	if got.Health.Status != peerregistry.StatusHealthy {
		t.Errorf("health = %+v, want HEALTHY", got.Health)
	}
	wantCode(t, reg.SetHealth(ctx, "svc", "SUPERB", ""), peerregistry.ErrInvalid)
	wantCode(t, reg.SetHealth(ctx, "nobody", peerregistry.StatusHealthy, ""), peerregistry.ErrNotFound)
}

func TestCloseUnregistersOnlyLeaseEntries(t *testing.T) {
	path := tempRegistryPath(t)
	owner, err := peerregistry.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustRegister(t, owner, peerregistry.Entry{ID: "leased", URL: "http://127.0.0.1:1/mcp"})
	mustRegister(t, owner, peerregistry.Entry{ID: "static", URL: "http://192.0.2.1:1/mcp", Liveness: peerregistry.LivenessNone})
	observer := openAt(t, path)
	if _, err := observer.Get("leased"); err != nil {
		t.Fatal(err)
	}
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = observer.Get("leased")
	wantCode(t, err, peerregistry.ErrNotFound)
	if _, err := observer.Get("static"); err != nil {
		t.Fatalf("static entry lost on Close: %v", err)
	}
	// The lease is free: someone else may take the id.
	mustRegister(t, observer, peerregistry.Entry{ID: "leased", URL: "http://127.0.0.1:1/mcp"})
}

func TestUseAfterCloseIsErrClosed(t *testing.T) {
	reg, _ := openTemp(t)
	mustRegister(t, reg, peerregistry.Entry{ID: "svc", URL: "http://127.0.0.1:1/mcp"})
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	_, err := reg.Register(ctx, peerregistry.Entry{ID: "x", URL: "http://127.0.0.1:1/mcp"})
	wantCode(t, err, peerregistry.ErrClosed)
	wantCode(t, reg.Unregister(ctx, "svc"), peerregistry.ErrClosed)
	_, err = reg.Get("svc")
	wantCode(t, err, peerregistry.ErrClosed)
	_, err = reg.List(peerregistry.Filter{})
	wantCode(t, err, peerregistry.ErrClosed)
	_, err = reg.ResolveTool("t")
	wantCode(t, err, peerregistry.ErrClosed)
	_, err = reg.ResolveResource("resource://x")
	wantCode(t, err, peerregistry.ErrClosed)
	_, err = reg.ResolvePrompt("p")
	wantCode(t, err, peerregistry.ErrClosed)
	wantCode(t, reg.SetHealth(ctx, "svc", peerregistry.StatusHealthy, ""), peerregistry.ErrClosed)
	wantCode(t, reg.Heartbeat(ctx, "svc"), peerregistry.ErrClosed)
	_, err = reg.Prune(ctx)
	wantCode(t, err, peerregistry.ErrClosed)
	_, err = reg.Watch(ctx)
	wantCode(t, err, peerregistry.ErrClosed)
}

func TestFinalizerReleasesAnUnreachableRegistry(t *testing.T) {
	path := tempRegistryPath(t)
	func() {
		reg, err := peerregistry.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		mustRegister(t, reg, peerregistry.Entry{ID: "forgotten", URL: "http://127.0.0.1:1/mcp"})
	}()
	observer := openAt(t, path)
	if _, err := observer.Get("forgotten"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		if _, err := observer.Get("forgotten"); err != nil {
			wantCode(t, err, peerregistry.ErrNotFound)
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("an unreachable Registry was never finalized: its lease entry is still live")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCancelledContextStopsWritesBeforeTheyStart(t *testing.T) {
	reg, _ := openTemp(t)
	mustRegister(t, reg, peerregistry.Entry{ID: "svc", URL: "http://127.0.0.1:1/mcp"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := reg.Register(ctx, peerregistry.Entry{ID: "never", URL: "http://127.0.0.1:1/mcp"}); err != context.Canceled {
		t.Fatalf("Register = %v, want context.Canceled", err)
	}
	if _, err := reg.Get("never"); err == nil {
		t.Fatal("a cancelled Register still registered the entry")
	}
	if err := reg.Unregister(ctx, "svc"); err != context.Canceled {
		t.Fatalf("Unregister = %v", err)
	}
	if err := reg.SetHealth(ctx, "svc", peerregistry.StatusDown, ""); err != context.Canceled {
		t.Fatalf("SetHealth = %v", err)
	}
	if err := reg.Heartbeat(ctx, "svc"); err != context.Canceled {
		t.Fatalf("Heartbeat = %v", err)
	}
	if _, err := reg.Prune(ctx); err != context.Canceled {
		t.Fatalf("Prune = %v", err)
	}
	if _, err := reg.Watch(ctx); err != context.Canceled {
		t.Fatalf("Watch = %v", err)
	}
	got, err := reg.Get("svc")
	if err != nil || got.Health.Status != peerregistry.StatusUnknown {
		t.Fatalf("cancelled calls changed the entry: %+v, %v", got, err)
	}
}

func TestOpenDefaultPathUsesEnvironment(t *testing.T) {
	path := tempRegistryPath(t)
	t.Setenv("PEER_REGISTRY_PATH", path)
	reg := openAt(t, "")
	mustRegister(t, reg, peerregistry.Entry{ID: "via-env", URL: "http://127.0.0.1:1/mcp"})
	explicit := openAt(t, path)
	if _, err := explicit.Get("via-env"); err != nil {
		t.Fatalf("Open(\"\") did not use $PEER_REGISTRY_PATH: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestEntryJSONOmitsUnsetFields(t *testing.T) {
	b, err := json.Marshal(peerregistry.Entry{ID: "x", URL: "http://127.0.0.1:1/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	// Unset fields must be absent so the library applies its defaults.
	if string(b) != `{"id":"x","url":"http://127.0.0.1:1/mcp"}` {
		t.Fatalf("minimal entry marshals as %s", b)
	}
	_, err = json.Marshal(peerregistry.Entry{ID: "x", Extra: map[string]json.RawMessage{"bad": json.RawMessage("{")}})
	if err == nil {
		t.Fatal("invalid Extra JSON was accepted")
	}
}

func assertJSONEqual(t *testing.T, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got %q: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got %s, want %s", got, want)
	}
}
