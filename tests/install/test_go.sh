#!/usr/bin/env bash
# The Go module used as a user would, outside this repository: bindings/go copied to a temp
# dir, a fresh consumer module requiring it through a `replace` directive (GOPROXY=off: nothing
# is fetched), HOME a temp dir too. The program runs register -> list -> watch event ->
# unregister, finding the library by the binding's rule: first by SONAME through the system
# loader (libpeerregistry.so.0 in a directory on LD_LIBRARY_PATH, as `make install` would put it
# on ld.so's path), then through $PEER_REGISTRY_LIB.
# Run from the repository root after `make lib`. Exits non-zero on any failure.
set -euo pipefail
repo="$(pwd)"
library="$repo/build/lib/libpeerregistry.so.0"
if [[ ! -f "$library" || ! -d "$repo/bindings/go" ]]; then
    echo "test_go.sh: $library is missing; run from the repository root after make lib" >&2
    exit 1
fi
"$repo/scripts/require-go.sh"
# Compiled packages are content-addressed: reusing the build cache keeps this fast without
# letting anything of the repository into the consumer's build.
gocache="$(go env GOCACHE)"

work="$(mktemp -d /tmp/peer-registry-install-go.XXXXXX)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
case "$work/" in "$repo"/*) echo "test_go.sh: temp dir $work is inside the repository" >&2; exit 1;; esac
mkdir -p "$work/home" "$work/lib" "$work/consumer"
cp -r "$repo/bindings/go" "$work/peerregistry"
cp "$(readlink -f "$library")" "$work/lib/libpeerregistry.so.0"

export HOME="$work/home" GOPATH="$work/home/go" GOCACHE="$gocache" GOPROXY=off GOFLAGS= \
    CGO_ENABLED=1
unset PEER_REGISTRY_LIB PEER_REGISTRY_PATH LD_LIBRARY_PATH

module=github.com/peer-registry/peer-registry/bindings/go/peerregistry
cd "$work/consumer"
go mod init example.com/consumer >/dev/null 2>&1
go mod edit -require="$module@v0.0.0" -replace="$module=$work/peerregistry"
cat > main.go <<'GO'
// A program outside the repository using the module: register -> list -> watch -> unregister.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "consumer: "+format+"\n", args...)
	os.Exit(1)
}

func next(w *peerregistry.Watcher, match func(peerregistry.Event) bool) {
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				fail("watch closed: %v", w.Err())
			}
			if match(ev) {
				return
			}
		case <-timeout:
			fail("no matching watch event within 5 s")
		}
	}
}

func has(entries []peerregistry.Entry, id string) bool {
	for _, e := range entries {
		if e.ID == id {
			return true
		}
	}
	return false
}

func main() {
	ctx := context.Background()
	reg, err := peerregistry.Open("") // the default: ~/.peer-plan/servers.json under this HOME
	if err != nil {
		fail("open: %v", err)
	}
	defer reg.Close()
	w, err := reg.Watch(ctx)
	if err != nil {
		fail("watch: %v", err)
	}
	defer w.Close()
	const id = "installed-go"
	stored, err := reg.Register(ctx, peerregistry.Entry{ID: id, URL: "http://127.0.0.1:45680/mcp",
		Capabilities: peerregistry.Capabilities{Tools: []string{"echo"}}})
	if err != nil || stored.PID != os.Getpid() {
		fail("register: %+v, %v", stored, err)
	}
	list, err := reg.List(peerregistry.Filter{})
	if err != nil || len(list.Servers) != 1 || list.Servers[0].ID != id {
		fail("list: %+v, %v", list, err)
	}
	if e, err := reg.ResolveTool("echo"); err != nil || e.ID != id {
		fail("resolve: %+v, %v", e, err)
	}
	next(w, func(ev peerregistry.Event) bool { return has(ev.Added, id) })
	if err := reg.Unregister(ctx, id); err != nil {
		fail("unregister: %v", err)
	}
	next(w, func(ev peerregistry.Event) bool { return has(ev.Removed, id) })
	if list, err := reg.List(peerregistry.Filter{}); err != nil || len(list.Servers) != 0 {
		fail("list after unregister: %+v, %v", list, err)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("HOME"), ".peer-plan", "servers.json")); err != nil {
		fail("the default registry file: %v", err)
	}
	fmt.Printf("register -> list -> watch -> unregister ok (library %s)\n", peerregistry.LibraryPath())
}
GO
go build -o consumer .
echo "test_go.sh: built a consumer of $work/peerregistry (replace directive, GOPROXY=off)"

# Nothing set: only the system loader is tried (no repository or build is guessed), and with
# no libpeerregistry.so.0 on ld.so's path that fails, naming it.
if /sbin/ldconfig -p 2>/dev/null | grep -q 'libpeerregistry\.so\.0'; then
    echo "test_go.sh: libpeerregistry.so.0 is installed system-wide; not checking the not-found case"
elif out="$(./consumer 2>&1)"; then
    echo "test_go.sh: the consumer found a library with nothing installed: $out" >&2
    exit 1
fi
case "$out" in
    *"system loader libpeerregistry.so.0"*) ;;
    *) echo "test_go.sh: the lookup error does not name the system loader: $out" >&2; exit 1;;
esac
LD_LIBRARY_PATH="$work/lib" ./consumer
PEER_REGISTRY_LIB="$work/lib/libpeerregistry.so.0" ./consumer
echo "test_go.sh: ok"
