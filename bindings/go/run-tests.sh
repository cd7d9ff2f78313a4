#!/usr/bin/env bash
# Runs every check of the Go binding: go vet and go test -race for bindings/go, and go vet for
# examples/go (whose server the tests build and run). Works from a fresh clone: installs Go
# through scripts/require-go.sh when it can, and builds the library with `make lib` when it is
# missing and PEER_REGISTRY_LIB does not point at one.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

"$root/scripts/require-go.sh"

# Go's own default locations, also where HOME is unset (some CI runners).
if [ -z "${HOME:-}" ]; then
  HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
  export HOME
fi
export GOPATH="${GOPATH:-$HOME/go}"
export GOCACHE="${GOCACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/go-build}"
export CGO_ENABLED=1 # the binding is cgo, and -race needs it

if [ -z "${PEER_REGISTRY_LIB:-}" ] && [ ! -f "$root/build/lib/libpeerregistry.so" ]; then
  echo "run-tests: $root/build/lib/libpeerregistry.so is missing; building it with make lib" >&2
  make -C "$root" lib
fi
# The binding never guesses where a build is: the tests name the repository's explicitly
# (the lookup tests set their own per child process).
export PEER_REGISTRY_LIB="${PEER_REGISTRY_LIB:-$root/build/lib/libpeerregistry.so}"

cd "$here"
go vet ./...
go test -race -count=1 ./...
cd "$root/examples/go"
go vet ./...
