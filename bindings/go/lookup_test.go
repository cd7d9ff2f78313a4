package peerregistry_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

// repoRoot is the repository holding this test file.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller failed")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// loadedLibrary makes sure this process has loaded the library and returns its path.
func loadedLibrary(t testing.TB) string {
	t.Helper()
	if _, err := peerregistry.VersionNumber(); err != nil {
		t.Fatal(err)
	}
	return peerregistry.LibraryPath()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// lookupInChild runs a fresh process that loads the library with the given environment
// (PEER_REGISTRY_LIB removed unless env sets it) and returns what it reported.
func lookupInChild(t *testing.T, env ...string) (path string, errMsg string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, peerregistry.LibraryEnv+"=") && !strings.HasPrefix(kv, "LD_LIBRARY_PATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"=lookup")
	cmd.Env = append(cmd.Env, env...)
	out, _ := cmd.Output()
	s := string(out)
	switch {
	case strings.HasPrefix(s, "PATH "):
		return strings.TrimPrefix(s, "PATH "), ""
	case strings.HasPrefix(s, "ERR "):
		return "", strings.TrimPrefix(s, "ERR ")
	}
	t.Fatalf("lookup helper printed %q", s)
	return "", ""
}

func TestLibraryLookupInFreshProcesses(t *testing.T) {
	real := loadedLibrary(t)
	dir := t.TempDir()
	libA := filepath.Join(dir, "a", "libpeerregistry.so")
	libB := filepath.Join(dir, "b", "libpeerregistry.so")
	copyFile(t, real, libA)
	copyFile(t, real, libB)

	t.Run("PEER_REGISTRY_LIB", func(t *testing.T) {
		if got, msg := lookupInChild(t, peerregistry.LibraryEnv+"="+libA); got != libA {
			t.Fatalf("loaded %q (%s), want %q", got, msg, libA)
		}
	})
	t.Run("explicit path beats PEER_REGISTRY_LIB", func(t *testing.T) {
		if got, msg := lookupInChild(t, peerregistry.LibraryEnv+"="+libA, helperExplicitEnv+"="+libB); got != libB {
			t.Fatalf("loaded %q (%s), want %q", got, msg, libB)
		}
	})
	t.Run("system loader: libpeerregistry.so.0 on LD_LIBRARY_PATH", func(t *testing.T) {
		soname := filepath.Join(dir, "system", "libpeerregistry.so.0")
		copyFile(t, real, soname)
		got, msg := lookupInChild(t, "LD_LIBRARY_PATH="+filepath.Dir(soname))
		if got != soname {
			t.Fatalf("loaded %q (%s), want the file the system loader found, %s", got, msg, soname)
		}
	})
	t.Run("nothing set: no repository build is guessed", func(t *testing.T) {
		// This test binary runs inside the repository, next to build/lib: the lookup must not
		// go looking there.
		got, msg := lookupInChild(t, "LD_LIBRARY_PATH=")
		if got != "" || !strings.Contains(msg, "system loader libpeerregistry.so.0") ||
			strings.Contains(msg, filepath.Join(repoRoot(t), "build")) {
			t.Fatalf("loaded %q, error %q; want only the system loader tried", got, msg)
		}
	})
	t.Run("a configured path that fails is not replaced by another library", func(t *testing.T) {
		missing := filepath.Join(dir, "missing", "libpeerregistry.so")
		got, msg := lookupInChild(t, peerregistry.LibraryEnv+"="+missing)
		if got != "" {
			t.Fatalf("loaded %q although %s points at a missing file", got, peerregistry.LibraryEnv)
		}
		if !strings.Contains(msg, "$PEER_REGISTRY_LIB "+missing+": no such file") || strings.Contains(msg, "repository build") {
			t.Fatalf("error does not name exactly the place tried:\n%s", msg)
		}
	})
}

func TestLoadLibraryAfterLoading(t *testing.T) {
	real := loadedLibrary(t)
	if err := peerregistry.LoadLibrary(real); err != nil {
		t.Fatalf("loading the loaded library again: %v", err)
	}
	other := filepath.Join(t.TempDir(), "libpeerregistry.so")
	copyFile(t, real, other)
	err := peerregistry.LoadLibrary(other)
	wantCode(t, err, peerregistry.ErrInvalid)
	if !strings.Contains(err.Error(), real) {
		t.Fatalf("error does not say where the library came from: %v", err)
	}
	_, err = peerregistry.OpenWith(peerregistry.Options{Path: tempRegistryPath(t), Library: other})
	wantCode(t, err, peerregistry.ErrInvalid)
	reg, err := peerregistry.OpenWith(peerregistry.Options{Path: tempRegistryPath(t), Library: real})
	if err != nil {
		t.Fatal(err)
	}
	reg.Close()
}
