#!/usr/bin/env bash
# Runs the Python binding's tests against this checkout's build/lib/libpeerregistry.so, named in
# $PEER_REGISTRY_LIB (the package never guesses repository paths). No install needed: the
# package is put on PYTHONPATH. The MCP Python SDK (mcp) and pytest are installed if missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

export PEER_REGISTRY_LIB="${PEER_REGISTRY_LIB:-$root/build/lib/libpeerregistry.so}"
if [ ! -f "$PEER_REGISTRY_LIB" ]; then
    echo "run-tests.sh: $PEER_REGISTRY_LIB not found; build it first (make lib)" >&2
    exit 1
fi
# The official MCP Python SDK (2.x: MCPServer, ClientSession) for the probe, example and
# peer_registry.mcp tests, and pytest: installed when missing (scripts/python-deps.sh).
. "$root/scripts/python-deps.sh"
python_deps mcp pytest

export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
cd "$root"
exec python3 -m pytest -q -p no:cacheprovider bindings/python/tests "$@"
