#!/usr/bin/env bash
# Makes sure the Go toolchain the Go binding needs is here: `go` (1.19 or newer) and a C
# compiler for cgo. When something is missing and we are root on a Debian-like system, installs
# Debian's packages; otherwise stops and prints the exact command to run.
set -euo pipefail

packages=()
command -v go >/dev/null 2>&1 || packages+=(golang-go)
command -v "${CC:-gcc}" >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 || packages+=(gcc libc6-dev)

if [ ${#packages[@]} -gt 0 ]; then
  install="apt-get update && apt-get install -y ${packages[*]}"
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "require-go: installing ${packages[*]}" >&2
    apt-get update && apt-get install -y "${packages[@]}"
  else
    echo "require-go: missing ${packages[*]} (the Go binding needs go >= 1.19 and a C compiler for cgo)." >&2
    if command -v apt-get >/dev/null 2>&1; then
      echo "Install with:  sudo sh -c '$install'" >&2
    else
      echo "Install Go >= 1.19 from https://go.dev/dl/ and a C compiler (gcc), then retry." >&2
    fi
    exit 1
  fi
fi

version=$(go env GOVERSION 2>/dev/null || true)   # e.g. go1.19.8
minor=$(printf '%s' "$version" | sed -n 's/^go1\.\([0-9][0-9]*\).*/\1/p')
if [ -z "$minor" ] || [ "$minor" -lt 19 ]; then
  echo "require-go: found ${version:-an unknown Go version}; the Go binding needs go >= 1.19." >&2
  exit 1
fi
