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
# peer_registry.mcp tests, and pytest: installed when missing, as tests/mcp/run.sh does.
if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("mcp").split(".")[0] != "2")' 2>/dev/null; then
    echo "run-tests.sh: installing the MCP Python SDK: python3 -m pip install 'mcp>=2.3,<3'" >&2
    python3 -m pip install --quiet --disable-pip-version-check 'mcp>=2.3,<3'
fi
if ! python3 -c 'import pytest' 2>/dev/null; then
    echo "run-tests.sh: installing pytest: python3 -m pip install pytest" >&2
    python3 -m pip install --quiet --disable-pip-version-check pytest
fi

export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
cd "$root"
exec python3 -m pytest -q -p no:cacheprovider bindings/python/tests "$@"
