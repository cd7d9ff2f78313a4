#!/usr/bin/env bash
# `peer-registry gateway` tested with real MCP servers (the official SDK's MCPServer over
# streamable HTTP and legacy SSE, registered through the Python binding) and the official MCP Python client
# over stdio and streamable HTTP (the `mcp` package from PyPI, installed if missing). Builds
# peer-registry unless $PEER_REGISTRY_BIN names one, and libpeerregistry.so for the binding
# unless $PEER_REGISTRY_LIB names one. Extra arguments go to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
SWIFT="${SWIFT:-swift}"

. "$root/scripts/python-deps.sh"
python_deps mcp pytest uvicorn

if [ -z "${PEER_REGISTRY_BIN:-}" ]; then
    "$SWIFT" build --product peer-registry
    PEER_REGISTRY_BIN="$("$SWIFT" build --show-bin-path)/peer-registry"
fi
export PEER_REGISTRY_BIN
export PEER_REGISTRY_LIB="${PEER_REGISTRY_LIB:-$root/build/lib/libpeerregistry.so}"
if [ ! -f "$PEER_REGISTRY_LIB" ]; then
    make lib
fi
export PYTHONDONTWRITEBYTECODE=1
exec python3 -m pytest -q -p no:cacheprovider "$here" "$@"
