#!/usr/bin/env bash
# Builds the addon and runs the Node binding's tests against the repository's library
# (build/lib/libpeerregistry.so, made by `make lib`), named through PEER_REGISTRY_LIB: the
# package itself never guesses where a repository is. Exits non-zero on any failure.
# Works from any directory, in a fresh clone once the library is built.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ ! -f "$repo/build/lib/libpeerregistry.so" ]]; then
    echo "run-tests.sh: $repo/build/lib/libpeerregistry.so is missing; build it first (make lib)" >&2
    exit 1
fi

"$here/build.sh"

# The lookup tests choose the library per child process; everything else uses this one.
export PEER_REGISTRY_LIB="$repo/build/lib/libpeerregistry.so"
unset PEER_REGISTRY_PATH
cd "$repo"
exec node --test bindings/node/test/
