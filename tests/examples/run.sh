#!/usr/bin/env bash
# The Node and Go example servers (examples/node, examples/go) tested with the official MCP
# Python SDK (`mcp` from PyPI, installed if missing) as the client, found through the registry.
# Needs the library (make lib); builds the Node addon and the Go example. Extra arguments go
# to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

. "$root/scripts/python-deps.sh"
python_deps mcp pytest
"$root/scripts/require-go.sh"
command -v node >/dev/null || { echo "run.sh: node is missing: apt-get install -y nodejs" >&2; exit 1; }

export PEER_REGISTRY_LIB="${PEER_REGISTRY_LIB:-$root/build/lib/libpeerregistry.so}"
if [[ ! -f "$PEER_REGISTRY_LIB" ]]; then
    echo "run.sh: $PEER_REGISTRY_LIB is missing; build it first (make lib)" >&2
    exit 1
fi
unset PEER_REGISTRY_PATH
"$root/bindings/node/build.sh" >/dev/null

export PYTHONDONTWRITEBYTECODE=1
exec python3 -m pytest -q -p no:cacheprovider tests/examples "$@"
