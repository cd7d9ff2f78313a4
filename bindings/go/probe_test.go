package peerregistry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

// pingServer answers MCP on /mcp as servers do — initialize (with an Mcp-Session-Id),
// notifications (202), ping, DELETE of the session — and counts the pings. A bare ping is
// answered too, so the tests hold whether the probe pings directly or after the handshake.
func pingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	pings := new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mcp" {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodDelete {
			return // 200
		}
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"params"`
		}
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&req) != nil || req.Method == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case req.ID == nil:
			w.WriteHeader(http.StatusAccepted)
		case req.Method == "initialize":
			w.Header().Set("Mcp-Session-Id", "probe-session")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":%q,"capabilities":{},"serverInfo":{"name":"probe-test","version":"0"}}}`,
				req.ID, req.Params.ProtocolVersion)
		case req.Method == "ping":
			pings.Add(1)
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, req.ID)
		default:
			http.Error(w, "bad request", http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, pings
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestProbeAnsweringServerIsHealthy(t *testing.T) {
	reg, _ := openTemp(t)
	srv, pings := pingServer(t)
	mustRegister(t, reg, peerregistry.Entry{ID: "up", URL: srv.URL + "/mcp"})
	before := time.Now().Add(-2 * time.Second)
	e, err := reg.Probe(context.Background(), "up", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e.Health.Status != peerregistry.StatusHealthy || e.Health.ConsecutiveFailures != 0 || e.Health.LastCheck.Before(before) {
		t.Fatalf("health after a good probe: %+v", e.Health)
	}
	if n := pings.Load(); n != 1 {
		t.Fatalf("server saw %d pings, want 1", n)
	}
	if got, _ := reg.Get("up"); got.Health.Status != peerregistry.StatusHealthy {
		t.Fatalf("probe result not recorded: %+v", got.Health)
	}
}

func TestProbeFailuresDegradeThenDown(t *testing.T) {
	reg, _ := openTemp(t)
	ctx := context.Background()
	url := fmt.Sprintf("http://127.0.0.1:%d/mcp", closedPort(t))
	mustRegister(t, reg, peerregistry.Entry{ID: "gone", URL: url, Liveness: peerregistry.LivenessNone,
		Capabilities: peerregistry.Capabilities{Tools: []string{"vanished"}}})
	want := []peerregistry.HealthStatus{peerregistry.StatusDegraded, peerregistry.StatusDegraded, peerregistry.StatusDown}
	for i, status := range want {
		e, err := reg.Probe(ctx, "gone", 500*time.Millisecond)
		if err != nil {
			t.Fatalf("probe %d: a failed probe must not be an error: %v", i+1, err)
		}
		if e.Health.Status != status || e.Health.ConsecutiveFailures != i+1 || e.Health.Message == "" {
			t.Fatalf("after %d failed probes: %+v, want %s with %d failures and a message", i+1, e.Health, status, i+1)
		}
	}
	_, err := reg.ResolveTool("vanished")
	wantCode(t, err, peerregistry.ErrNotFound)
}

func TestProbeTimeoutIsBounded(t *testing.T) {
	reg, _ := openTemp(t)
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); srv.Close() })
	mustRegister(t, reg, peerregistry.Entry{ID: "slow", URL: srv.URL + "/mcp"})

	start := time.Now()
	e, err := reg.Probe(context.Background(), "slow", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a 300 ms probe took %v", took)
	}
	if e.Health.Status != peerregistry.StatusDegraded {
		t.Errorf("a hanging server is %q, want DEGRADED", e.Health.Status)
	}

	// A context deadline sooner than the timeout bounds the probe too.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := reg.Probe(ctx, "slow", time.Minute); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a probe under a 300 ms deadline took %v", took)
	}
}

func TestProbeErrors(t *testing.T) {
	reg, _ := openTemp(t)
	_, err := reg.Probe(context.Background(), "nobody", time.Second)
	wantCode(t, err, peerregistry.ErrNotFound)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := reg.Probe(ctx, "nobody", time.Second); err != context.Canceled {
		t.Fatalf("Probe with a cancelled context = %v", err)
	}
	reg.Close()
	_, err = reg.Probe(context.Background(), "nobody", time.Second)
	wantCode(t, err, peerregistry.ErrClosed)
	if !strings.Contains(err.Error(), "closed") {
		t.Fatalf("message %q", err)
	}
}
