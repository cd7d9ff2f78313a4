#!/usr/bin/env bash
# The Node and Go example servers (examples/node, examples/go) tested with the official MCP
# Python SDK (`mcp` from PyPI, installed if missing) as the client, found through the registry.
# Needs the library (make lib); builds the Node addon and the Go example. Extra arguments go
# to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

mcp_requirement='mcp>=2.3,<3'
if ! python3 - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if int(m.version("mcp").split(".")[0]) == 2 else 1)
PY
then
    echo "run.sh: installing the MCP Python SDK: python3 -m pip install '$mcp_requirement'" >&2
    python3 -m pip install --quiet --disable-pip-version-check "$mcp_requirement"
fi
if ! python3 -c 'import pytest' 2>/dev/null; then
    echo "run.sh: installing pytest: python3 -m pip install pytest" >&2
    python3 -m pip install --quiet --disable-pip-version-check pytest
fi
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
