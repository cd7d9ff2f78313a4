#!/usr/bin/env bash
# `peer-registry gateway` tested with real MCP servers (the official SDK's MCPServer over
# streamable HTTP, registered through the Python binding) and the official MCP Python client
# over stdio and streamable HTTP (the `mcp` package from PyPI, installed if missing). Builds
# peer-registry unless $PEER_REGISTRY_BIN names one, and libpeerregistry.so for the binding
# unless $PEER_REGISTRY_LIB names one. Extra arguments go to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
SWIFT="${SWIFT:-swift}"

mcp_requirement='mcp>=2.3,<3'
if ! python3 - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if int(m.version("mcp").split(".")[0]) == 2 else 1)
PY
then
    echo "run.sh: installing the MCP Python SDK: python3 -m pip install '$mcp_requirement'" >&2
    python3 -m pip install --quiet --disable-pip-version-check "$mcp_requirement"
fi
for module in pytest uvicorn; do
    if ! python3 -c "import $module" 2>/dev/null; then
        echo "run.sh: installing $module: python3 -m pip install $module" >&2
        python3 -m pip install --quiet --disable-pip-version-check "$module"
    fi
done

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
