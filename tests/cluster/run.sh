#!/usr/bin/env bash
# The cluster agent (docs/CLUSTER.md) against a real 3-member etcd cluster on loopback ports:
# installs Debian's etcd-server when missing (as root; else prints the command), builds
# peer-registry and registry-crowd-worker unless $PEER_REGISTRY_BIN / $PEER_REGISTRY_WORKER name
# them. Extra arguments go to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
SWIFT="${SWIFT:-swift}"

python3 -c 'import sys; sys.path.insert(0, "'"$here"'"); import cluster; cluster.require_etcd()'
# The gateway-across-nodes test: the official MCP SDK as backend and client.
. "$root/scripts/python-deps.sh"
python_deps mcp pytest uvicorn
if [ -z "${PEER_REGISTRY_BIN:-}" ] || [ -z "${PEER_REGISTRY_WORKER:-}" ]; then
    "$SWIFT" build --product peer-registry
    "$SWIFT" build --product registry-crowd-worker
    bin="$("$SWIFT" build --show-bin-path)"
    PEER_REGISTRY_BIN="${PEER_REGISTRY_BIN:-$bin/peer-registry}"
    PEER_REGISTRY_WORKER="${PEER_REGISTRY_WORKER:-$bin/registry-crowd-worker}"
fi
export PEER_REGISTRY_BIN PEER_REGISTRY_WORKER
export PEER_REGISTRY_LIB="${PEER_REGISTRY_LIB:-$root/build/lib/libpeerregistry.so}"
[ -f "$PEER_REGISTRY_LIB" ] || make lib
export PYTHONDONTWRITEBYTECODE=1
cd "$here"
exec python3 -m pytest -q -p no:cacheprovider test_agent.py "$@"
