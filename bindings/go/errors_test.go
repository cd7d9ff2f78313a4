package peerregistry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

var sentinels = []*peerregistry.Error{
	peerregistry.ErrInvalid, peerregistry.ErrNotFound, peerregistry.ErrExists,
	peerregistry.ErrCorrupt, peerregistry.ErrIO, peerregistry.ErrPermission,
	peerregistry.ErrTimeout, peerregistry.ErrAmbiguous, peerregistry.ErrLimit,
	peerregistry.ErrClosed,
}

func TestErrorsIsMatchesByCode(t *testing.T) {
	for _, s := range sentinels {
		err := fmt.Errorf("context: %w", &peerregistry.Error{Code: s.Code, Message: "library said so"})
		for _, other := range sentinels {
			if got, want := errors.Is(err, other), other == s; got != want {
				t.Errorf("errors.Is(%v, %v) = %v", s.Code, other.Code, got)
			}
		}
		var perr *peerregistry.Error
		if !errors.As(err, &perr) || perr.Code != s.Code {
			t.Errorf("errors.As lost the code of %v", s.Code)
		}
		if !strings.Contains(err.Error(), s.Code.String()) || !strings.Contains(err.Error(), "library said so") {
			t.Errorf("message %q lacks the code name or the library's message", err)
		}
	}
	if errors.Is(peerregistry.ErrNotFound, errors.New("not found")) {
		t.Error("an *Error matched a plain error")
	}
	if peerregistry.CodeNotFound.String() != "PEERREG_ENOTFOUND" || peerregistry.Code(-99).String() != "PEERREG_CODE(-99)" {
		t.Error("Code.String does not use the header's names")
	}
}

func TestErrNotFound(t *testing.T) {
	reg, _ := openTemp(t)
	_, err := reg.Get("missing")
	wantCode(t, err, peerregistry.ErrNotFound)
}

func TestErrExistsSameIDFromTwoHandles(t *testing.T) {
	first, path := openTemp(t)
	second := openAt(t, path)
	mustRegister(t, first, peerregistry.Entry{ID: "contested", URL: "http://127.0.0.1:1/mcp", Name: "first"})
	_, err := second.Register(context.Background(), peerregistry.Entry{ID: "contested", URL: "http://127.0.0.1:2/mcp", Name: "second"})
	wantCode(t, err, peerregistry.ErrExists)
	got, err := second.Get("contested")
	if err != nil || got.Name != "first" {
		t.Fatalf("the holder's entry changed: %+v, %v", got, err)
	}
}

func TestErrExistsAgainstAnotherProcess(t *testing.T) {
	reg, path := openTemp(t)
	startHolder(t, path, peerregistry.Entry{ID: "theirs", URL: "http://127.0.0.1:1/mcp"})
	_, err := reg.Register(context.Background(), peerregistry.Entry{ID: "theirs", URL: "http://127.0.0.1:2/mcp"})
	wantCode(t, err, peerregistry.ErrExists)
}

func TestErrCorruptGarbageFile(t *testing.T) {
	reg, path := openTemp(t)
	mustRegister(t, reg, peerregistry.Entry{ID: "svc", URL: "http://127.0.0.1:1/mcp"})
	garbage := []byte("{\"version\":1,\"servers\":[{\"id\": tru")
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	// A corrupt file does not fail Open; reads and writes report it.
	other := openAt(t, path)
	_, err := other.List(peerregistry.Filter{})
	perr := wantCode(t, err, peerregistry.ErrCorrupt)
	if !strings.Contains(perr.Message, path) {
		t.Errorf("corrupt message does not name the file: %q", perr.Message)
	}
	_, err = other.Get("svc")
	wantCode(t, err, peerregistry.ErrCorrupt)
	_, err = other.Register(context.Background(), peerregistry.Entry{ID: "new", URL: "http://127.0.0.1:2/mcp"})
	wantCode(t, err, peerregistry.ErrCorrupt)
	// Refusing to write means the evidence is untouched.
	if b, _ := os.ReadFile(path); !bytes.Equal(b, garbage) {
		t.Fatalf("a refused write changed the corrupt file to %q", b)
	}
}

func TestErrPermissionOpenGroupWritableDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := peerregistry.Open(filepath.Join(dir, "servers.json"))
	perr := wantCode(t, err, peerregistry.ErrPermission)
	if !strings.Contains(perr.Message, dir) {
		t.Errorf("message does not name the directory: %q", perr.Message)
	}
	// After the fix the message points at, it opens.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	openAt(t, filepath.Join(dir, "servers.json"))
}

func TestErrPermissionSymlinkedFile(t *testing.T) {
	reg, path := openTemp(t)
	mustRegister(t, reg, peerregistry.Entry{ID: "svc", URL: "http://127.0.0.1:1/mcp"})
	reg.Close()
	real := filepath.Join(t.TempDir(), "elsewhere.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(real, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, path); err != nil {
		t.Fatal(err)
	}
	_, err = peerregistry.Open(path)
	wantCode(t, err, peerregistry.ErrPermission)
}

func TestErrLimitOversizedEntryChangesNothing(t *testing.T) {
	reg, _ := openTemp(t)
	mustRegister(t, reg, peerregistry.Entry{ID: "svc", URL: "http://127.0.0.1:1/mcp"})
	before, err := reg.List(peerregistry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("x", 4<<20)
	_, err = reg.Register(context.Background(), peerregistry.Entry{ID: "huge", URL: "http://127.0.0.1:2/mcp", Name: huge})
	wantCode(t, err, peerregistry.ErrLimit)
	tools := make([]string, 100000)
	for i := range tools {
		tools[i] = fmt.Sprintf("tool%d", i)
	}
	_, err = reg.Register(context.Background(), peerregistry.Entry{ID: "many", URL: "http://127.0.0.1:2/mcp",
		Capabilities: peerregistry.Capabilities{Tools: tools}})
	wantCode(t, err, peerregistry.ErrLimit)
	after, err := reg.List(peerregistry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation || len(after.Servers) != 1 {
		t.Fatalf("a refused register changed the registry: generation %d -> %d, servers %v",
			before.Generation, after.Generation, ids(after.Servers))
	}
}

func TestErrInvalid(t *testing.T) {
	reg, _ := openTemp(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		entry peerregistry.Entry
	}{
		{"slash in id", peerregistry.Entry{ID: "a/b", URL: "http://127.0.0.1:1/mcp"}},
		{"dot in id", peerregistry.Entry{ID: "a.b", URL: "http://127.0.0.1:1/mcp"}},
		{"empty id", peerregistry.Entry{URL: "http://127.0.0.1:1/mcp"}},
		{"id too long", peerregistry.Entry{ID: strings.Repeat("a", 65), URL: "http://127.0.0.1:1/mcp"}},
		{"no url", peerregistry.Entry{ID: "no-url"}},
		{"unknown transport", peerregistry.Entry{ID: "t", URL: "http://127.0.0.1:1/mcp", Transport: "carrier-pigeon"}},
		{"unknown liveness", peerregistry.Entry{ID: "l", URL: "http://127.0.0.1:1/mcp", Liveness: "vibes"}},
		// encoding/json replaces invalid UTF-8 in Go strings; Extra is passed through as is.
		{"invalid UTF-8", peerregistry.Entry{ID: "u", URL: "http://127.0.0.1:1/mcp",
			Extra: map[string]json.RawMessage{"note": json.RawMessage("\"bad \xff byte\"")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reg.Register(ctx, tc.entry)
			wantCode(t, err, peerregistry.ErrInvalid)
		})
	}
	t.Run("invalid health status", func(t *testing.T) {
		mustRegister(t, reg, peerregistry.Entry{ID: "svc", URL: "http://127.0.0.1:1/mcp"})
		wantCode(t, reg.SetHealth(ctx, "svc", "SUPERB", ""), peerregistry.ErrInvalid)
	})
	t.Run("invalid UTF-8 in id", func(t *testing.T) {
		_, err := reg.Get("bad\xff")
		wantCode(t, err, peerregistry.ErrInvalid)
	})
	t.Run("NUL byte in id", func(t *testing.T) {
		_, err := reg.Get("svc\x00tail")
		wantCode(t, err, peerregistry.ErrInvalid)
	})
	res, err := reg.List(peerregistry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Servers) != 1 {
		t.Fatalf("invalid registrations left entries behind: %v", ids(res.Servers))
	}
}

func TestErrIOUnusablePath(t *testing.T) {
	// The registry's directory would have to be created inside a regular file.
	file := filepath.Join(t.TempDir(), "not-a-directory")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := peerregistry.Open(filepath.Join(file, "registry", "servers.json"))
	perr := wantCode(t, err, peerregistry.ErrIO)
	t.Logf("library says: %s", perr.Message)
}

func TestErrTimeoutWhileAnotherHolderHasTheLock(t *testing.T) {
	t.Parallel()
	reg, path := openTemp(t)
	lock, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("the lock file should exist after Open: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// Like the library's own writers, the holder records its pid in the lock file.
	if err := lock.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = reg.Register(context.Background(), peerregistry.Entry{ID: "blocked", URL: "http://127.0.0.1:1/mcp"})
	perr := wantCode(t, err, peerregistry.ErrTimeout)
	t.Logf("lock timeout after %v: %s", time.Since(start).Round(time.Millisecond), perr.Message)
	if !strings.Contains(perr.Message, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("timeout message does not name the holder (pid %d): %q", os.Getpid(), perr.Message)
	}
	// Reads take no lock and still work.
	if _, err := reg.List(peerregistry.Filter{}); err != nil {
		t.Fatalf("List while the lock is held: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	mustRegister(t, reg, peerregistry.Entry{ID: "blocked", URL: "http://127.0.0.1:1/mcp"})
}

func TestErrAmbiguous(t *testing.T) {
	reg, _ := openTemp(t)
	for _, id := range []string{"one", "two"} {
		mustRegister(t, reg, peerregistry.Entry{ID: id, URL: "http://127.0.0.1:1/mcp",
			Capabilities: peerregistry.Capabilities{Prompts: []string{"greet"}}})
	}
	_, err := reg.ResolvePrompt("greet")
	wantCode(t, err, peerregistry.ErrAmbiguous)
}
