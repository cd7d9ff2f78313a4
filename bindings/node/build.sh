#!/usr/bin/env bash
# Builds the N-API addon build/peer_registry.node (in this package's directory) from
# src/addon.c and include/peer_registry.h, both inside the package. Plain C against Node's own
# headers: no node-gyp, no downloads. libpeerregistry is not linked; the addon dlopen()s it at
# run time (see "Finding the library" in README.md). An addon built here is preferred over the
# package's prebuilt one (prebuilds/<platform>-<arch>/).
#   NODE_INCLUDE  directory holding node_api.h (default: next to the running node, else
#                 /usr/include/node)
#   CC, CFLAGS    compiler and extra flags
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -z "${NODE_INCLUDE:-}" ]]; then
    node_bin="$(command -v node || true)"
    prefix="$(dirname "$(dirname "$(readlink -f "${node_bin:-/usr/bin/node}")")")"
    for dir in "$prefix/include/node" /usr/include/node /usr/local/include/node; do
        if [[ -f "$dir/node_api.h" ]]; then NODE_INCLUDE="$dir"; break; fi
    done
fi
if [[ -z "${NODE_INCLUDE:-}" || ! -f "$NODE_INCLUDE/node_api.h" ]]; then
    echo "build.sh: node_api.h not found; set NODE_INCLUDE to Node's include/node directory" >&2
    exit 1
fi

mkdir -p "$here/build"
out="$here/build/peer_registry.node"
# Build to a temporary name and rename, so a running test never loads a half-written file.
tmp="$out.tmp.$$"
${CC:-cc} -std=gnu11 -O2 -g -fPIC -shared -fvisibility=hidden \
    -Wall -Wextra -Werror \
    -I"$NODE_INCLUDE" -I"$here/include" \
    ${CFLAGS:-} \
    "$here/src/addon.c" -o "$tmp" -ldl -lpthread
mv -f "$tmp" "$out"
echo "built $out"
