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

// fakeRepo makes a directory tree that looks like the repository (include/peer_registry.h)
// with a subdirectory to start from.
func fakeRepo(t *testing.T) (root, sub string) {
	t.Helper()
	root = t.TempDir()
	sub = filepath.Join(root, "bindings", "go")
	for _, d := range []string{filepath.Join(root, "include"), sub} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "include", "peer_registry.h"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return root, sub
}

func TestLibraryLookupOrder(t *testing.T) {
	repoA, subA := fakeRepo(t)
	repoB, subB := fakeRepo(t)
	outside := t.TempDir()
	libA := filepath.Join(repoA, "build", "lib", "libpeerregistry.so")
	libB := filepath.Join(repoB, "build", "lib", "libpeerregistry.so")
	paths := func(cs []libraryCandidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.source+"="+c.path)
		}
		return out
	}
	for _, tc := range []struct {
		name                     string
		explicit, env, src, work string
		want                     []string
	}{
		{"explicit beats everything", "/x/lib.so", "/env/lib.so", subA, subB,
			[]string{"explicit path=/x/lib.so"}},
		{"env beats the repository", "", "/env/lib.so", subA, subB,
			[]string{"$PEER_REGISTRY_LIB=/env/lib.so"}},
		{"source repository, then working directory's, then system", "", "", subA, subB,
			[]string{"repository build=" + libA, "repository build=" + libB, "system loader=libpeerregistry.so.0"}},
		{"same repository once", "", "", subA, repoA,
			[]string{"repository build=" + libA, "system loader=libpeerregistry.so.0"}},
		{"no repository", "", "", outside, outside,
			[]string{"repository build=", "repository build=", "system loader=libpeerregistry.so.0"}},
		{"source unknown (-trimpath)", "", "", "", subB,
			[]string{"repository build=" + libB, "system loader=libpeerregistry.so.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := paths(libraryCandidates(tc.explicit, tc.env, tc.src, tc.work))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestLoadErrorNamesEveryPlaceTried(t *testing.T) {
	_, sub := fakeRepo(t) // a repository without a built library
	outside := t.TempDir()
	notALibrary := filepath.Join(outside, "libpeerregistry.so")
	if err := os.WriteFile(notALibrary, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	candidates := libraryCandidates("", "", sub, outside)
	// Make the "system loader" step deterministic: a name no system has.
	candidates[len(candidates)-1].path = "libpeerregistry-does-not-exist.so.0"
	_, _, err := loadFirst(candidates)
	var lerr *LoadError
	if !errors.As(err, &lerr) {
		t.Fatalf("got %v, want *LoadError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"repository build " + filepath.Join(filepath.Dir(filepath.Dir(sub)), "build", "lib", "libpeerregistry.so") + ": no such file",
		"repository build: no directory holding include/peer_registry.h at or above " + outside,
		"system loader libpeerregistry-does-not-exist.so.0: ",
		"make lib", LibraryEnv,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if len(lerr.Attempts) != 3 {
		t.Errorf("%d attempts, want 3: %+v", len(lerr.Attempts), lerr.Attempts)
	}

	// A repository build that exists but is not a library stops the search there.
	brokenRoot, brokenSub := fakeRepo(t)
	broken := filepath.Join(brokenRoot, "build", "lib", "libpeerregistry.so")
	if err := os.MkdirAll(filepath.Dir(broken), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(broken, []byte("not an ELF file"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = loadFirst(libraryCandidates("", "", brokenSub, outside))
	if !errors.As(err, &lerr) || len(lerr.Attempts) != 1 || lerr.Attempts[0].Path != broken {
		t.Fatalf("a broken repository build did not stop the search: %v", err)
	}

	// A file that is not a shared library: dlopen's own reason is kept.
	_, _, err = loadFirst(libraryCandidates(notALibrary, "", "", ""))
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
