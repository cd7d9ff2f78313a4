package peerregistry

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// LibraryEnv names the environment variable that points at libpeerregistry.so.
const LibraryEnv = "PEER_REGISTRY_LIB"

// HeaderVersion and HeaderVersionNumber are the version of include/peer_registry.h this
// package was built against. The loaded library must have the same major version and at
// least the same minor version.
const (
	HeaderVersion       = "0.2.0"
	HeaderVersionNumber = 2000
)

// systemLibrary is the library's SONAME, resolved by the system loader's search path.
const systemLibrary = "libpeerregistry.so.0"

// The library is loaded once per process: its function table is global.
var (
	loadMu     sync.Mutex
	loaded     atomic.Bool
	loadedPath string // the file loaded (for the system loader: the file it found)
	loadedAs   string // what was asked for: a path, or the bare soname
)

// LoadError reports that libpeerregistry could not be loaded, with every place tried.
type LoadError struct {
	Attempts []LoadAttempt
}

// LoadAttempt is one place the library was looked for and why it was not used.
type LoadAttempt struct {
	Source string // "explicit path", "$PEER_REGISTRY_LIB", "system loader"
	Path   string // the path given to dlopen ("" when there was nothing to try)
	Reason string
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString("peerregistry: cannot load libpeerregistry; tried:")
	for _, a := range e.Attempts {
		b.WriteString("\n  ")
		b.WriteString(a.Source)
		if a.Path != "" {
			b.WriteString(" " + a.Path)
		}
		b.WriteString(": " + a.Reason)
	}
	b.WriteString("\ninstall libpeerregistry.so.0 where the system loader finds it (make install, " +
		"or its directory in LD_LIBRARY_PATH), or set " + LibraryEnv + " to the library's path")
	return b.String()
}

// libraryCandidate is one place in the lookup order. A candidate with an empty path was
// considered but had nothing to try; its reason says why.
type libraryCandidate struct {
	source string
	path   string
	reason string
}

// libraryCandidates is the lookup rule shared with the Python and Node bindings (docs/ABI.md,
// "Finding the library"):
//  1. an explicit path (LoadLibrary, Options.Library): if given, the only place tried;
//  2. else $PEER_REGISTRY_LIB: if set, the only place tried;
//  3. else the copy the package ships — a Go module is source and ships none, so for Go
//     there is no such step;
//  4. else the system's libpeerregistry.so.0, by SONAME (ld.so's search path).
//
// Nothing guesses where a repository or a build is. A path someone configured is never
// silently replaced by another library: when it fails to load, loading fails and says why
// (see loadFirst).
func libraryCandidates(explicit, env string) []libraryCandidate {
	if explicit != "" {
		return []libraryCandidate{{source: "explicit path", path: explicit}}
	}
	if env != "" {
		return []libraryCandidate{{source: "$" + LibraryEnv, path: env}}
	}
	return []libraryCandidate{
		{source: "$" + LibraryEnv, reason: "not set"},
		{source: "system loader", path: systemLibrary},
	}
}

// LoadLibrary loads libpeerregistry from path, which takes precedence over every other place.
// It must be called before anything else in this package uses the library; once a library is
// loaded, loading the same path again is a no-op and loading another path is an error.
func LoadLibrary(path string) error {
	if path == "" {
		return &Error{Code: CodeInvalid, Message: "LoadLibrary: empty path"}
	}
	return ensureLoaded(path)
}

// LibraryPath returns the file the library was loaded from — for the system loader, the file
// it found for libpeerregistry.so.0 — or "" before it is loaded.
func LibraryPath() string {
	loadMu.Lock()
	defer loadMu.Unlock()
	return loadedPath
}

func ensureLoaded(explicit string) error {
	if loaded.Load() && explicit == "" {
		return nil
	}
	loadMu.Lock()
	defer loadMu.Unlock()
	if loaded.Load() {
		if explicit == "" || explicit == loadedAs || sameFile(explicit, loadedPath) {
			return nil
		}
		return &Error{Code: CodeInvalid, Message: fmt.Sprintf(
			"LoadLibrary(%q): the library is already loaded from %s", explicit, loadedPath)}
	}
	api, path, err := loadFirst(libraryCandidates(explicit, os.Getenv(LibraryEnv)))
	if err != nil {
		return err
	}
	cInstall(api)
	loadedAs = path
	loadedPath = path
	if !strings.ContainsRune(path, '/') { // found by the system loader: say which file
		if file := cAPIFile(api); file != "" {
			loadedPath = file
		}
	}
	loaded.Store(true)
	return nil
}

// loadFirst tries the candidates in order and returns the first that loads, or a *LoadError
// listing every attempt. A candidate that exists (or, for the system loader, is found) but
// cannot be used — not a shared library, a missing symbol, an incompatible version — ends the
// search: silently loading a different build would hide the mistake. A library that loaded
// but was refused stays mapped: a Swift runtime cannot be safely unloaded.
func loadFirst(candidates []libraryCandidate) (*cAPI, string, error) {
	var attempts []LoadAttempt
	for _, c := range candidates {
		attempt := LoadAttempt{Source: c.source, Path: c.path, Reason: c.reason}
		if c.path == "" {
			attempts = append(attempts, attempt)
			continue
		}
		bySearch := !strings.ContainsRune(c.path, '/') // a bare name goes to the system loader
		if !bySearch {
			if _, err := os.Stat(c.path); err != nil {
				attempt.Reason = statReason(err)
				attempts = append(attempts, attempt)
				continue
			}
		}
		api, msg := cLoad(c.path)
		if api == nil {
			attempt.Reason = msg
			attempts = append(attempts, attempt)
			if bySearch {
				continue
			}
			return nil, "", &LoadError{Attempts: attempts}
		}
		if err := checkVersion(cAPIVersionNumber(api)); err != nil {
			attempt.Reason = err.Error()
			attempts = append(attempts, attempt)
			return nil, "", &LoadError{Attempts: attempts}
		}
		return api, c.path, nil
	}
	return nil, "", &LoadError{Attempts: attempts}
}

func statReason(err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return "no such file"
	}
	return err.Error()
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// checkVersion accepts a library with the header's major version and at least its minor
// version (the rule the Python and Node bindings apply too).
func checkVersion(lib int) error {
	header := HeaderVersionNumber
	if lib/1000000 != header/1000000 || lib/1000%1000 < header/1000%1000 {
		return fmt.Errorf("library version %s is not compatible with header version %s (need %d.%d.x or a later %d.x)",
			versionString(lib), HeaderVersion, header/1000000, header/1000%1000, header/1000000)
	}
	return nil
}

func versionString(n int) string {
	return fmt.Sprintf("%d.%d.%d", n/1000000, n/1000%1000, n%1000)
}

// Version returns the loaded library's version string, e.g. "0.2.0", loading it if needed.
func Version() (string, error) {
	if err := ensureLoaded(""); err != nil {
		return "", err
	}
	return cVersion(), nil
}

// VersionNumber returns the loaded library's version as major*1000000 + minor*1000 + patch,
// loading it if needed.
func VersionNumber() (int, error) {
	if err := ensureLoaded(""); err != nil {
		return 0, err
	}
	return cVersionNumber(), nil
}

// errNeedsNewerLibrary reports a call whose C function the loaded library does not export
// (looked up optionally, see cabi.go): cluster scope came with libpeerregistry 0.2.0.
func errNeedsNewerLibrary(symbol string) error {
	return &Error{Code: CodeInvalid, Message: fmt.Sprintf(
		"%s needs libpeerregistry >= 0.2.0; the library loaded from %s is %s", symbol, LibraryPath(), cVersion())}
}
