#!/usr/bin/env bash
# Writes the npm tarball peer-registry-<version>.tgz: this package with, for the platform it
# runs on, a prebuilt addon and the library beside it (prebuilds/<platform>-<arch>/), plus the
# header and C source so build.sh can rebuild the addon elsewhere. Offline: plain `npm pack` of
# a staged copy. Used by `make dist-node`.
#   pack.sh LIBRARY OUTDIR    LIBRARY: the built libpeerregistry.so.<version> (make lib)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -ne 2 ]]; then
    echo "usage: $0 path/to/libpeerregistry.so.<version> outdir" >&2
    exit 2
fi
library="$(readlink -f "$1")"
outdir="$2"
if [[ ! -f "$library" ]]; then
    echo "pack.sh: $1 is missing; build it first (make lib)" >&2
    exit 1
fi
repo_header="$here/../../include/peer_registry.h"
if [[ -f "$repo_header" ]] && ! cmp -s "$repo_header" "$here/include/peer_registry.h"; then
    echo "pack.sh: bindings/node/include/peer_registry.h differs from include/peer_registry.h;" \
         "copy it: cp include/peer_registry.h bindings/node/include/" >&2
    exit 1
fi

stage="$(mktemp -d "${TMPDIR:-/tmp}/peer-registry-pack.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/package"
mkdir -p "$pkg"
# Exactly what package.json's "files" lists (npm adds package.json itself).
(cd "$here" && cp --parents package.json index.js index.mjs index.d.ts promises.js \
    promises.mjs promises.d.ts README.md src/addon.c include/peer_registry.h build.sh install.js \
    "$pkg/")

platform="$(node -p 'process.platform + "-" + process.arch')"
"$pkg/build.sh" >/dev/null
mkdir -p "$pkg/prebuilds/$platform"
strip --strip-unneeded -o "$pkg/prebuilds/$platform/peer_registry.node" "$pkg/build/peer_registry.node"
rm -rf "$pkg/build"
cp "$library" "$pkg/prebuilds/$platform/libpeerregistry.so.0"
chmod 0755 "$pkg/prebuilds/$platform/"*

mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
tarball="$(cd "$pkg" && npm pack --silent --pack-destination "$outdir")"
echo "$outdir/$tarball"
