#!/usr/bin/env bash
# `peer-registry supervise` tested with real MCP servers and the official MCP Python SDK as the
# client (the `mcp` package from PyPI, installed if missing). Builds peer-registry unless
# $PEER_REGISTRY_BIN names one. Extra arguments go to pytest.
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
if ! python3 -c 'import pytest' 2>/dev/null; then
    echo "run.sh: installing pytest: python3 -m pip install pytest" >&2
    python3 -m pip install --quiet --disable-pip-version-check pytest
fi

if [ -z "${PEER_REGISTRY_BIN:-}" ]; then
    "$SWIFT" build --product peer-registry
    PEER_REGISTRY_BIN="$("$SWIFT" build --show-bin-path)/peer-registry"
fi
export PEER_REGISTRY_BIN
export PYTHONDONTWRITEBYTECODE=1
exec python3 -m pytest -q -p no:cacheprovider "$here" "$@"
