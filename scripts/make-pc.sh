#!/bin/sh
# Writes peerregistry.pc for an install (or the build tree) to stdout:
#   scripts/make-pc.sh PREFIX LIBDIR INCLUDEDIR VERSION
# The libdir is also put in an rpath, so programs built with it run without LD_LIBRARY_PATH
# when PREFIX is not on the loader's path.
set -eu
[ $# -eq 4 ] || { echo "usage: $0 PREFIX LIBDIR INCLUDEDIR VERSION" >&2; exit 2; }
prefix=$1 libdir=$2 includedir=$3 version=$4
rel() { case "$1" in "$prefix"/*) printf '${prefix}%s' "${1#"$prefix"}";; *) printf '%s' "$1";; esac; }
here=$(dirname "$0")
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$(rel "$libdir")|" -e "s|@INCLUDEDIR@|$(rel "$includedir")|" \
    -e "s|@VERSION@|$version|" "$here/peerregistry.pc.in"
