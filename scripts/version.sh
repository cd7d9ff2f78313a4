#!/usr/bin/env bash
# The version lives in VERSION (one line, MAJOR.MINOR.PATCH); the Makefile reads it, and this
# script keeps every other copy in step:
#   scripts/version.sh --check       every copy agrees with VERSION and the header copies are identical
#                                    (make test-version; exit 1 if not)
#   scripts/version.sh --set X.Y.Z   writes X.Y.Z into VERSION and every copy
# The copies: include/peer_registry.h (PEERREG_VERSION, PEERREG_VERSION_NUMBER) and the
# bindings' copies of it, Sources/RegistryKit/Version.swift (the C ABI, CLI, servers and prober
# use it), bindings/node/package.json, bindings/python/pyproject.toml and peer_registry/__init__.py.
set -euo pipefail
cd "$(dirname "$0")/.."

headers=(include/peer_registry.h bindings/node/include/peer_registry.h bindings/go/peer_registry.h)

number_of() {  # 1.2.3 -> 1002003
    local major minor patch
    IFS=. read -r major minor patch <<<"$1"
    echo $((major * 1000000 + minor * 1000 + patch))
}

case "${1:-}" in
--set)
    v="${2:-}"
    [[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "version.sh: --set needs MAJOR.MINOR.PATCH, not '$v'" >&2; exit 2; }
    n=$(number_of "$v")
    echo "$v" > VERSION
    for h in "${headers[@]}"; do
        sed -i -E "s/^#define PEERREG_VERSION \"[^\"]*\"/#define PEERREG_VERSION \"$v\"/; s/^#define PEERREG_VERSION_NUMBER [0-9]+/#define PEERREG_VERSION_NUMBER $n/" "$h"
    done
    sed -i -E "s/(static let string: StaticString = )\"[^\"]*\"/\1\"$v\"/; s/(static let number: Int32 = )[0-9]+/\1$n/" Sources/RegistryKit/Version.swift
    sed -i -E "0,/\"version\": \"[^\"]*\"/s//\"version\": \"$v\"/" bindings/node/package.json
    sed -i -E "s/^version = \"[^\"]*\"/version = \"$v\"/" bindings/python/pyproject.toml
    sed -i -E "s/^__version__ = \"[^\"]*\"/__version__ = \"$v\"/" bindings/python/src/peer_registry/__init__.py
    "$0" --check
    ;;
--check)
    v=$(cat VERSION)
    [[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "version.sh: VERSION holds '$v', not MAJOR.MINOR.PATCH" >&2; exit 1; }
    n=$(number_of "$v")
    bad=0
    expect() {  # expect <file> <what> <found>
        local want=$4
        if [ "$3" != "$want" ]; then echo "version.sh: $1: $2 is '$3', VERSION says '$want'" >&2; bad=1; fi
    }
    for h in "${headers[@]}"; do
        expect "$h" PEERREG_VERSION "$(sed -n -E 's/^#define PEERREG_VERSION "([^"]*)".*/\1/p' "$h")" "$v"
        expect "$h" PEERREG_VERSION_NUMBER "$(sed -n -E 's/^#define PEERREG_VERSION_NUMBER ([0-9]+).*/\1/p' "$h")" "$n"
    done
    expect Sources/RegistryKit/Version.swift string "$(sed -n -E 's/.*static let string: StaticString = "([^"]*)".*/\1/p' Sources/RegistryKit/Version.swift)" "$v"
    expect Sources/RegistryKit/Version.swift number "$(sed -n -E 's/.*static let number: Int32 = ([0-9]+).*/\1/p' Sources/RegistryKit/Version.swift)" "$n"
    expect bindings/node/package.json version "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' bindings/node/package.json)" "$v"
    expect bindings/python/pyproject.toml version "$(sed -n -E 's/^version = "([^"]*)".*/\1/p' bindings/python/pyproject.toml)" "$v"
    expect bindings/python/src/peer_registry/__init__.py __version__ "$(sed -n -E 's/^__version__ = "([^"]*)".*/\1/p' bindings/python/src/peer_registry/__init__.py)" "$v"
    # The bindings carry copies of the header (each package must build on its own): the same bytes.
    for h in "${headers[@]:1}"; do
        cmp -s include/peer_registry.h "$h" || { echo "version.sh: $h differs from include/peer_registry.h; copy it" >&2; bad=1; }
    done
    # Nothing else in the sources may spell the version out.
    if grep -rn --include='*.swift' -F "\"$v\"" Sources | grep -v '^Sources/RegistryKit/Version.swift:'; then
        echo "version.sh: the Swift sources above spell out $v; use PeerRegistryVersion" >&2
        bad=1
    fi
    [ "$bad" -eq 0 ] && echo "version.sh: $v (number $n) everywhere"
    exit "$bad"
    ;;
*)
    echo "usage: scripts/version.sh --check | --set MAJOR.MINOR.PATCH" >&2
    exit 2
    ;;
esac
