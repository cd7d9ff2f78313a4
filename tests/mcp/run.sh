#!/usr/bin/env bash
# `peer-registry mcp` tested with a client nobody here wrote: the official MCP Python SDK
# (the `mcp` package from PyPI), installed if missing. Builds peer-registry (unless
# $PEER_REGISTRY_BIN names one) and libpeerregistry.so for the Python binding (unless
# $PEER_REGISTRY_LIB names one). Extra arguments go to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
SWIFT="${SWIFT:-swift}"

# The tests use the SDK's 2.x API (snake_case result fields, ClientSession.initialize).
mcp_requirement='mcp>=2.3,<3'
if ! python3 - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
major = int(m.version("mcp").split(".")[0])
sys.exit(0 if major == 2 else 1)
PY
then
    echo "run.sh: installing the MCP Python SDK: python3 -m pip install '$mcp_requirement'" >&2
    python3 -m pip install --quiet --disable-pip-version-check "$mcp_requirement"
fi
if ! python3 -c 'import pytest' 2>/dev/null; then
    echo "run.sh: installing pytest: python3 -m pip install pytest" >&2
    python3 -m pip install --quiet --disable-pip-version-check pytest
fi

if [ -z "${PEER_REGISTRY_BIN:-}" ]; then
    "$SWIFT" build --product peer-registry
    PEER_REGISTRY_BIN="$("$SWIFT" build --show-bin-path)/peer-registry"
fi
export PEER_REGISTRY_BIN
mcp_help="$("$PEER_REGISTRY_BIN" mcp --help 2>&1 || true)"
if [[ "$mcp_help" != *"USAGE: peer-registry mcp"* ]]; then
    echo "run.sh: $PEER_REGISTRY_BIN has no 'mcp' subcommand (is MCPCommand.self among PeerRegistry's subcommands?)" >&2
    exit 1
fi

export PEER_REGISTRY_LIB="${PEER_REGISTRY_LIB:-$root/build/lib/libpeerregistry.so}"
if [ ! -f "$PEER_REGISTRY_LIB" ]; then
    make lib
fi

export PYTHONDONTWRITEBYTECODE=1
exec python3 -m pytest -q -p no:cacheprovider tests/mcp "$@"
