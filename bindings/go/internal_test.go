package peerregistry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestHeaderVersionMatchesHeaderFile(t *testing.T) {
	if HeaderVersion != headerVersionC {
		t.Fatalf("HeaderVersion %q, include/peer_registry.h says %q", HeaderVersion, headerVersionC)
	}
}

// The header promises that a closed handle is looked up in a table, never dereferenced, and
// that every later call returns PEERREG_ECLOSED. Registry never passes a closed handle (it
// answers ErrClosed itself); this checks the library's own promise with a stale pointer.
func TestLibraryReturnsClosedForAClosedHandle(t *testing.T) {
	if err := ensureLoaded(""); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "reg", "servers.json")
	err := cGetOnClosedHandle(append([]byte(path), 0))
	var perr *Error
	if !errors.As(err, &perr) || perr.Code != CodeClosed || !errors.Is(err, ErrClosed) {
		t.Fatalf("peerreg_get on a closed handle = %v, want PEERREG_ECLOSED", err)
	}
}

func TestLibraryLookupOrder(t *testing.T) {
	paths := func(cs []libraryCandidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.source+"="+c.path)
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		explicit, env string
		want          []string
	}{
		{"explicit beats everything", "/x/lib.so", "/env/lib.so", []string{"explicit path=/x/lib.so"}},
		{"env beats the system", "", "/env/lib.so", []string{"$PEER_REGISTRY_LIB=/env/lib.so"}},
		{"nothing set: the system loader, nothing guessed", "", "",
			[]string{"$PEER_REGISTRY_LIB=", "system loader=libpeerregistry.so.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := paths(libraryCandidates(tc.explicit, tc.env))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestLoadErrorNamesEveryPlaceTried(t *testing.T) {
	outside := t.TempDir()
	notALibrary := filepath.Join(outside, "libpeerregistry.so")
	if err := os.WriteFile(notALibrary, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	candidates := libraryCandidates("", "")
	// Make the "system loader" step deterministic: a name no system has.
	candidates[len(candidates)-1].path = "libpeerregistry-does-not-exist.so.0"
	_, _, err := loadFirst(candidates)
	var lerr *LoadError
	if !errors.As(err, &lerr) {
		t.Fatalf("got %v, want *LoadError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"$PEER_REGISTRY_LIB: not set",
		"system loader libpeerregistry-does-not-exist.so.0: ",
		"make install", LibraryEnv,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if len(lerr.Attempts) != 2 {
		t.Errorf("%d attempts, want 2: %+v", len(lerr.Attempts), lerr.Attempts)
	}

	// $PEER_REGISTRY_LIB naming something that is not a library stops the search there.
	_, _, err = loadFirst(libraryCandidates("", notALibrary))
	if !errors.As(err, &lerr) || len(lerr.Attempts) != 1 || lerr.Attempts[0].Path != notALibrary {
		t.Fatalf("a broken $PEER_REGISTRY_LIB did not stop the search: %v", err)
	}

	// A file that is not a shared library: dlopen's own reason is kept.
	_, _, err = loadFirst(libraryCandidates(notALibrary, ""))
	if err == nil || !strings.Contains(err.Error(), "explicit path "+notALibrary+": ") ||
		strings.Contains(err.Error(), "no such file") {
		t.Fatalf("got %v", err)
	}
}

func TestCheckVersion(t *testing.T) {
	for _, tc := range []struct {
		lib int
		ok  bool
	}{
		{HeaderVersionNumber, true},
		{HeaderVersionNumber + 1, true},        // a newer patch
		{HeaderVersionNumber + 1000, true},     // a newer minor: additions only
		{HeaderVersionNumber - 1000, false},    // an older minor may lack what we call
		{1000000 + HeaderVersionNumber, false}, // another major
	} {
		if err := checkVersion(tc.lib); (err == nil) != tc.ok {
			t.Errorf("checkVersion(%d) = %v, want ok=%v", tc.lib, err, tc.ok)
		}
	}
}

// BenchmarkGetCallOnly is BenchmarkGet without decoding the JSON into an Entry: the library's
// lookup plus the two cgo crossings (peerreg_get, peerreg_free) and the copy into Go memory.
func BenchmarkGetCallOnly(b *testing.B) {
	if err := ensureLoaded(""); err != nil {
		b.Fatal(err)
	}
	reg, err := Open(filepath.Join(b.TempDir(), "reg", "servers.json"))
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	for i := 0; i < 100; i++ {
		e := Entry{ID: fmt.Sprintf("svc-%d", i), URL: fmt.Sprintf("http://127.0.0.1:%d/mcp", 2000+i),
			Capabilities: Capabilities{Tools: []string{fmt.Sprintf("tool-%d", i)}}}
		if _, err := reg.Register(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
	id := []byte("svc-42\x00")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := reg.call(func(h *cRegistry) error { _, err := cGet(h, id); return err }); err != nil {
			b.Fatal(err)
		}
	}
}

// The module carries its own copy of the header (cgo compiles against it, so the module works
// copied anywhere); inside the repository it must be the repository's header, byte for byte.
func TestHeaderCopyIsTheRepositoryHeader(t *testing.T) {
	ours, err := os.ReadFile("peer_registry.h")
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := os.ReadFile(filepath.Join("..", "..", "include", "peer_registry.h"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("not inside the repository (no ../../include/peer_registry.h): nothing to compare with")
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(ours) != string(theirs) {
		t.Fatal("bindings/go/peer_registry.h differs from include/peer_registry.h; " +
			"copy it: cp include/peer_registry.h bindings/go/")
	}
}
