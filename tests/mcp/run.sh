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

. "$root/scripts/python-deps.sh"
python_deps mcp pytest

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
