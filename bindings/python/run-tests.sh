#!/usr/bin/env bash
# Runs the Python binding's tests against this checkout's build/lib/libpeerregistry.so
# (or $PEER_REGISTRY_LIB if set). No install needed: the package is put on PYTHONPATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

export PEER_REGISTRY_LIB="${PEER_REGISTRY_LIB:-$root/build/lib/libpeerregistry.so}"
if [ ! -f "$PEER_REGISTRY_LIB" ]; then
    echo "run-tests.sh: $PEER_REGISTRY_LIB not found; build it first (make lib)" >&2
    exit 1
fi
if ! python3 -c 'import pytest' 2>/dev/null; then
    echo "run-tests.sh: pytest is missing: python3 -m pip install pytest" >&2
    exit 1
fi

export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
cd "$root"
exec python3 -m pytest -q -p no:cacheprovider bindings/python/tests "$@"
