#!/usr/bin/env bash
# `peer-registry supervise` tested with real MCP servers and the official MCP Python SDK as the
# client (the `mcp` package from PyPI, installed if missing). Builds peer-registry unless
# $PEER_REGISTRY_BIN names one. Extra arguments go to pytest.
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
export PYTHONDONTWRITEBYTECODE=1
exec python3 -m pytest -q -p no:cacheprovider "$here" "$@"
