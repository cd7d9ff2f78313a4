package peerregistry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

// The example server (examples/go/server) registers the port it actually got, answers ping,
// and unregisters on SIGTERM.
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

	// What a client does: find the server, then talk to it.
	resp, err := http.Post(entry.URL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	var rpc struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      int             `json:"id"`
		Result  json.RawMessage `json:"result"`
		Error   *struct{}       `json:"error"`
	}
	err = json.NewDecoder(resp.Body).Decode(&rpc)
	resp.Body.Close()
	if err != nil || rpc.JSONRPC != "2.0" || rpc.ID != 7 || string(rpc.Result) != "{}" || rpc.Error != nil {
		t.Fatalf("ping answered %+v (result %s), %v", rpc, rpc.Result, err)
	}

	// The library's own probe (an MCP ping over HTTP) finds it healthy too.
	probed, err := reg.Probe(context.Background(), "example", 2*time.Second)
	if err != nil || probed.Health.Status != peerregistry.StatusHealthy || probed.Health.ConsecutiveFailures != 0 {
		t.Fatalf("Probe(example) = %+v, %v", probed.Health, err)
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
