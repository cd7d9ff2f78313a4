#!/usr/bin/env bash
# make test-conformance: runs tests/conformance/cases.json through the Swift, C, Python, Node
# and Go runners and requires every runner to pass every case and all five to print the same
# lines (tests/conformance/README.md). Needs build/lib (make lib); installs libcjson-dev for
# the C runner when root on Debian, else stops with the command to run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
SWIFT="${SWIFT:-swift}"
LIB="$root/build/lib/libpeerregistry.so"
[ -e "$LIB" ] || { echo "conformance: $LIB missing; run: make lib" >&2; exit 1; }
if [ ! -f /usr/include/cjson/cJSON.h ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "conformance: installing libcjson-dev for the C runner" >&2
        apt-get install -y libcjson-dev >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y libcjson-dev >/dev/null; }
    else
        echo "conformance: the C runner needs cJSON; install it with: sudo apt-get install -y libcjson-dev" >&2
        exit 1
    fi
fi
scripts/require-go.sh
command -v node >/dev/null || { echo "conformance: node is missing: apt-get install -y nodejs" >&2; exit 1; }

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CASES="$root/tests/conformance/cases.json"
export PEER_REGISTRY_LIB="$LIB"
unset PEER_REGISTRY_PATH PEER_REGISTRY_TEST_CLOCK_FILE

status=0
run() {  # run <language> <command...>: the runner's lines into $OUT/<language>.txt
    local language=$1; shift
    if "$@" > "$OUT/$language.txt" 2> "$OUT/$language.err"; then :; else
        echo "conformance: the $language runner failed (exit $?)" >&2
        cat "$OUT/$language.err" >&2
        status=1
    fi
}

echo "== building the Swift runner and the Node addon"
"$SWIFT" build --product registry-conformance
bindings/node/build.sh
cc -std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude tests/conformance/runner.c \
    -Lbuild/lib -lpeerregistry -Wl,-rpath,"$root/build/lib" -lcjson -o "$OUT/runner-c"

echo "== running the cases in five languages"
run swift "$("$SWIFT" build --show-bin-path)/registry-conformance" "$CASES"
run c "$OUT/runner-c" "$CASES"
run python env PYTHONPATH="$root/bindings/python/src" PYTHONDONTWRITEBYTECODE=1 python3 tests/conformance/runner.py "$CASES"
run node node tests/conformance/runner.js "$CASES"
(
    cd bindings/go
    export GOPATH="${GOPATH:-${HOME:-/root}/go}" GOCACHE="${GOCACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/go-build}" CGO_ENABLED=1
    PEERREG_CONFORMANCE_OUT="$OUT/go.txt" go test -count=1 -run '^TestConformance$' . > "$OUT/go.err" 2>&1
) || { echo "conformance: the go runner failed" >&2; cat "$OUT/go.err" >&2; status=1; }

cases=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["cases"]))' "$CASES")
for language in swift c python node go; do
    file="$OUT/$language.txt"
    passed=$(grep -c ' => pass$' "$file" 2>/dev/null || true)
    echo "$language: $passed of $cases cases pass"
    grep ' => FAIL' "$file" 2>/dev/null | sed "s/^/  $language: /" || true
    [ "$passed" = "$cases" ] || status=1
    if [ "$language" != swift ] && ! diff -u --label swift --label "$language" "$OUT/swift.txt" "$file"; then
        echo "conformance: $language does not agree with swift" >&2
        status=1
    fi
done
if [ "$status" -eq 0 ]; then
    echo "conformance: all $cases cases pass and give the same results in Swift, C, Python, Node and Go"
fi
exit "$status"
