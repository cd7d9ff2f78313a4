package peerregistry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

// The test binary doubles as the "other process" the tests need: run with helperEnv set, it
// does one job instead of running tests.
const (
	helperEnv         = "PEERREG_GO_TEST_HELPER"
	helperEntryEnv    = "PEERREG_GO_TEST_ENTRY"
	helperExplicitEnv = "PEERREG_GO_TEST_EXPLICIT_LIB"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

func runHelper(mode string) int {
	switch mode {
	case "hold":
		// Register the entry in $PEERREG_GO_TEST_ENTRY in $PEER_REGISTRY_PATH, say READY with
		// the stored entry, and stay registered until stdin closes (or we are killed).
		reg, err := peerregistry.Open("")
		if err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		var e peerregistry.Entry
		if err := json.Unmarshal([]byte(os.Getenv(helperEntryEnv)), &e); err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		stored, err := reg.Register(context.Background(), e)
		if err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		b, _ := json.Marshal(stored)
		fmt.Printf("READY %s\n", b)
		_, _ = io.Copy(io.Discard, os.Stdin)
		reg.Close()
		return 0
	case "lookup":
		// Load the library by the usual rule (or from the explicit path given) and report where
		// it came from.
		if p := os.Getenv(helperExplicitEnv); p != "" {
			if err := peerregistry.LoadLibrary(p); err != nil {
				fmt.Printf("ERR %s", err)
				return 1
			}
		}
		if _, err := peerregistry.VersionNumber(); err != nil {
			fmt.Printf("ERR %s", err)
			return 1
		}
		fmt.Printf("PATH %s", peerregistry.LibraryPath())
		return 0
	case "without-cluster":
		// Open a registry through the library in $PEERREG_GO_TEST_EXPLICIT_LIB (a stand-in
		// without the 0.2.0 functions) and report, one line each, what the scoped calls and
		// the plain ones did.
		if err := peerregistry.LoadLibrary(os.Getenv(helperExplicitEnv)); err != nil {
			fmt.Printf("ERR %s\n", err)
			return 1
		}
		reg, err := peerregistry.Open("")
		if err != nil {
			fmt.Printf("ERR %s\n", err)
			return 1
		}
		defer reg.Close()
		report := func(what string, err error) {
			b, _ := json.Marshal(err)
			fmt.Printf("%s %s %s\n", what, b, err)
		}
		_, err = reg.ResolveToolIn("t", peerregistry.ScopeCluster)
		report("resolve-cluster", err)
		w, err := reg.WatchFiltered(context.Background(), peerregistry.Filter{Scope: peerregistry.ScopeCluster})
		if w != nil {
			w.Close()
		}
		report("watch-cluster", err)
		e, err := reg.ResolveToolIn("t", peerregistry.ScopeLocal)
		report("resolve-local:"+e.ID, err)
		e, err = reg.ResolveTool("t")
		report("resolve:"+e.ID, err)
		return 0
	case "loadtime":
		// Time a fresh process's first call: dlopen + symbol lookup + version check + the call.
		start := time.Now()
		if _, err := peerregistry.VersionNumber(); err != nil {
			fmt.Printf("ERR %s", err)
			return 1
		}
		fmt.Printf("%d", time.Since(start).Nanoseconds())
		return 0
	}
	fmt.Println("unknown helper mode", mode)
	return 2
}

// helperCommand returns a command running this test binary in helper mode.
func helperCommand(t testing.TB, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// heldEntry is a helper process holding a registration.
type heldEntry struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	entry peerregistry.Entry
}

// startHolder starts a helper process that registers e in the registry at path and keeps it
// registered until release() or kill.
func startHolder(t *testing.T, path string, e peerregistry.Entry) *heldEntry {
	t.Helper()
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	cmd := helperCommand(t, "hold", "PEER_REGISTRY_PATH="+path, helperEntryEnv+"="+string(body))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &heldEntry{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper exited before registering: %v (output %q)", err, line)
	}
	line = strings.TrimSpace(line)
	payload := strings.TrimPrefix(line, "READY ")
	if payload == line {
		t.Fatalf("helper failed: %s", line)
	}
	if err := json.Unmarshal([]byte(payload), &h.entry); err != nil {
		t.Fatalf("helper's entry %q: %v", payload, err)
	}
	return h
}

// tempRegistryPath returns a registry file path in a fresh directory the library will create.
func tempRegistryPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "registry", "servers.json")
}

// openTemp opens a registry on a fresh temporary file and closes it when the test ends.
func openTemp(t testing.TB) (*peerregistry.Registry, string) {
	t.Helper()
	path := tempRegistryPath(t)
	return openAt(t, path), path
}

func openAt(t testing.TB, path string) *peerregistry.Registry {
	t.Helper()
	reg, err := peerregistry.Open(path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

func mustRegister(t testing.TB, reg *peerregistry.Registry, e peerregistry.Entry) peerregistry.Entry {
	t.Helper()
	stored, err := reg.Register(context.Background(), e)
	if err != nil {
		t.Fatalf("Register(%s): %v", e.ID, err)
	}
	return stored
}

// wantCode fails unless err is an *Error with code want, matched by errors.Is against the
// sentinel too.
func wantCode(t testing.TB, err error, sentinel *peerregistry.Error) *peerregistry.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", sentinel.Code)
	}
	var perr *peerregistry.Error
	if !errors.As(err, &perr) {
		t.Fatalf("got %T %v, want *peerregistry.Error %v", err, err, sentinel.Code)
	}
	if perr.Code != sentinel.Code {
		t.Fatalf("got %v (%v), want %v", perr.Code, err, sentinel.Code)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("errors.Is(%v, %v) = false", err, sentinel.Code)
	}
	return perr
}

func ids(entries []peerregistry.Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ID
	}
	return out
}

// nextEvent waits for the next event on w, failing the test after timeout.
func nextEvent(t *testing.T, w *peerregistry.Watcher, timeout time.Duration) peerregistry.Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watch channel closed: %v", w.Err())
		}
		return ev
	case <-time.After(timeout):
		t.Fatalf("no watch event within %v", timeout)
	}
	panic("unreachable")
}

// waitForEvent skips events until one satisfies match.
func waitForEvent(t *testing.T, w *peerregistry.Watcher, timeout time.Duration, match func(peerregistry.Event) bool) peerregistry.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no matching watch event within %v", timeout)
		}
		ev := nextEvent(t, w, left)
		if match(ev) {
			return ev
		}
	}
}

func hasID(entries []peerregistry.Entry, id string) bool {
	for _, e := range entries {
		if e.ID == id {
			return true
		}
	}
	return false
}
