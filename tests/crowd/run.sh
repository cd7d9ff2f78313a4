#!/usr/bin/env bash
# The cross-language crowd test: 8 Python + 8 Node + 8 Go processes (and 2 Swift ones when
# Swift's registry-crowd-worker is already built) hammer one temporary registry through their
# bindings while some are SIGKILLed; see tests/crowd/driver.py for what is checked.
# Needs: build/lib/libpeerregistry.so (make lib), node with its headers (the addon is built
# here), Go (scripts/require-go.sh installs it or prints the command), python3 with jsonschema.
# Extra arguments go to driver.py (e.g. --seed N, --iterations N). CROWD_SWIFT=0 leaves Swift out;
# CROWD_SWIFT_WORKER=path names its binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

export PEER_REGISTRY_LIB="${PEER_REGISTRY_LIB:-$repo/build/lib/libpeerregistry.so}"
if [[ ! -f "$PEER_REGISTRY_LIB" ]]; then
    echo "tests/crowd/run.sh: $PEER_REGISTRY_LIB is missing; build it first (make lib)" >&2
    exit 1
fi
unset PEER_REGISTRY_PATH
if ! python3 -c 'import jsonschema' 2>/dev/null; then
    echo "tests/crowd/run.sh: the schema check needs jsonschema: python3 -m pip install jsonschema" >&2
    exit 1
fi

"$repo/scripts/require-go.sh"
if [[ -z "${HOME:-}" ]]; then HOME=$(getent passwd "$(id -u)" | cut -d: -f6); export HOME; fi
export GOPATH="${GOPATH:-$HOME/go}"
export GOCACHE="${GOCACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/go-build}"
export CGO_ENABLED=1

"$repo/bindings/node/build.sh" >/dev/null

bin="$(mktemp -d "${TMPDIR:-/tmp}/peerreg-crowd-bin.XXXXXX")"
trap 'rm -rf "$bin"' EXIT
(cd "$here/go" && go build -o "$bin/crowdworker-go" .)

swift=()
if [[ "${CROWD_SWIFT:-1}" != 0 ]]; then
    worker="${CROWD_SWIFT_WORKER:-$repo/.build/debug/registry-crowd-worker}"
    if [[ -x "$worker" ]]; then
        # A copy: another build relinking the original mid-run must not change what runs.
        cp "$worker" "$bin/registry-crowd-worker"
        swift=(--swift-worker "$bin/registry-crowd-worker")
    else
        echo "crowd: no Swift worker at $worker (swift build makes it); running without Swift"
    fi
fi

export PYTHONDONTWRITEBYTECODE=1
python3 "$here/driver.py" --go-worker "$bin/crowdworker-go" "${swift[@]}" "$@"
