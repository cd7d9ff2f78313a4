package peerregistry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

// The example server (examples/go/server) registers the port it actually got, speaks MCP's
// streamable HTTP transport as the spec says, and unregisters on SIGTERM.
func TestExampleServerRegistersItsPortAndUnregistersOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example")
	}
	binary := filepath.Join(t.TempDir(), "example-server")
	build := exec.Command("go", "build", "-o", binary, "./server")
	build.Dir = filepath.Join(repoRoot(t), "examples", "go")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example: %v\n%s", err, out)
	}

	reg, path := openTemp(t)
	w, err := reg.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	server := exec.Command(binary, "-id", "example")
	server.Env = append(os.Environ(), "PEER_REGISTRY_PATH="+path)
	server.Stderr = os.Stderr
	stdout, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	var exited chan error // Wait runs once, after reading stdout, as os/exec requires
	t.Cleanup(func() {
		_ = server.Process.Kill()
		if exited != nil {
			<-exited
		} else {
			_ = server.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("server said %q: %v", line, err)
	}
	exited = make(chan error, 1)
	go func() { exited <- server.Wait() }()
	url := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	var port int
	if _, err := fmt.Sscanf(url, "http://127.0.0.1:%d/mcp", &port); err != nil || port == 0 {
		t.Fatalf("server printed %q", line)
	}

	entry, err := reg.Get("example")
	if err != nil {
		t.Fatal(err)
	}
	if entry.Port != port || entry.URL != url || entry.Transport != peerregistry.TransportHTTP ||
		entry.PID != server.Process.Pid || entry.Health.Status != peerregistry.StatusHealthy {
		t.Fatalf("registered %+v; want port %d, url %s, pid %d, HEALTHY", entry, port, url, server.Process.Pid)
	}
	if got, err := reg.ResolveTool("echo"); err != nil || got.ID != "example" {
		t.Fatalf("ResolveTool(echo) = %s, %v", got.ID, err)
	}

	if !entry.RequiresSession || !reflect.DeepEqual(entry.Capabilities.Tools, []string{"add", "echo"}) {
		t.Fatalf("registered requiresSession %v, tools %q; want true, [add echo]", entry.RequiresSession, entry.Capabilities.Tools)
	}

	// What a client does: find the server, then talk to it — MCP's streamable HTTP transport.
	// (tests/examples drives the same server with the official MCP SDK.)
	init := postMCP(t, entry.URL, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"go-test","version":"0"}}}`, nil)
	if init.status != http.StatusOK || init.body["result"].(map[string]any)["protocolVersion"] != "2025-06-18" {
		t.Fatalf("initialize: %d %v", init.status, init.body)
	}
	session := init.header.Get("Mcp-Session-Id")
	if session == "" {
		t.Fatal("initialize answered without an Mcp-Session-Id")
	}
	withSession := map[string]string{"Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-06-18"}
	if got := postMCP(t, entry.URL, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, withSession); got.status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: %d, want 202", got.status)
	}
	ping := `{"jsonrpc":"2.0","id":7,"method":"ping"}`
	if got := postMCP(t, entry.URL, ping, withSession); got.status != http.StatusOK || got.body["id"] != float64(7) ||
		!reflect.DeepEqual(got.body["result"], map[string]any{}) {
		t.Fatalf("ping: %d %v", got.status, got.body)
	}
	echo := postMCP(t, entry.URL, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`, withSession)
	if text := echo.body["result"].(map[string]any)["content"].([]any)[0].(map[string]any)["text"]; text != "hi" {
		t.Fatalf("echo: %v", echo.body)
	}
	future := postMCP(t, entry.URL, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2099-01-01"}}`, nil)
	if v := future.body["result"].(map[string]any)["protocolVersion"]; v != "2025-11-25" {
		t.Fatalf("an unknown version negotiated %v, want the newest, 2025-11-25", v)
	}
	for _, tc := range []struct {
		what    string
		headers map[string]string
		body    string
		status  int
	}{
		{"no Mcp-Session-Id", nil, ping, http.StatusBadRequest},
		{"unknown session", map[string]string{"Mcp-Session-Id": "nobody"}, ping, http.StatusNotFound},
		{"another protocol version", map[string]string{"Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-03-26"}, ping, http.StatusBadRequest},
		{"a batch", withSession, "[" + ping + "]", http.StatusBadRequest},
		{"not JSON", withSession, "nope", http.StatusBadRequest},
		{"a foreign origin", map[string]string{"Mcp-Session-Id": session, "Origin": "http://evil.example"}, ping, http.StatusForbidden},
	} {
		if got := postMCP(t, entry.URL, tc.body, tc.headers); got.status != tc.status {
			t.Errorf("%s: status %d, want %d (%v)", tc.what, got.status, tc.status, got.body)
		}
	}
	if resp, err := http.Get(entry.URL); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v, want 405", resp, err)
	} else {
		resp.Body.Close()
	}
	del, _ := http.NewRequest(http.MethodDelete, entry.URL, nil)
	del.Header.Set("Mcp-Session-Id", session)
	if resp, err := http.DefaultClient.Do(del); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	if got := postMCP(t, entry.URL, ping, withSession); got.status != http.StatusNotFound {
		t.Fatalf("a deleted session answered %d, want 404", got.status)
	}

	if err := server.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("server exited with %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not exit within 10s of SIGTERM")
	}
	_, err = reg.Get("example")
	wantCode(t, err, peerregistry.ErrNotFound)
	waitForEvent(t, w, eventTimeout, func(ev peerregistry.Event) bool { return hasID(ev.Removed, "example") })
}

type mcpReply struct {
	status int
	header http.Header
	body   map[string]any
}

// postMCP POSTs one JSON-RPC message as an MCP client does and decodes the JSON answer, if any.
func postMCP(t *testing.T, url, body string, headers map[string]string) mcpReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := mcpReply{status: resp.StatusCode, header: resp.Header}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out.body); err != nil {
			t.Fatalf("%s answered %d with non-JSON %q", url, resp.StatusCode, data)
		}
	}
	return out
}
