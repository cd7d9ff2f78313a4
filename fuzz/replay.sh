#!/usr/bin/env bash
# make test-fuzz-corpus: replays every file of fuzz/corpus/<target>/ through the same fuzz
# targets and invariants (fuzz/targets/*.swift), built without sanitizers (fuzz/build.sh
# replay: one swiftc -Onone build, a few seconds). Files named regress-* reproduce bugs these
# tests found (fixed since). Last line: "N passed, N failed" (inputs).
set -uo pipefail
cd "$(dirname "$0")/.."
export SWIFT_BACKTRACE=enable=no
fuzz/build.sh replay || { echo "0 passed, 1 failed"; exit 1; }
passed=0 failed=0
for t in parser entry cabi; do
    line=$(build/fuzz/replay "$t" "fuzz/corpus/$t" 2> >(grep -E '^(FAILED|FUZZ INVARIANT|  input)' >&2) | tail -1)
    echo "$line"
    n=$(echo "$line" | sed -n 's/.*: \([0-9]*\) inputs replayed, \([0-9]*\) failed.*/\1 \2/p')
    set -- $n
    passed=$((passed + ${1:-0} - ${2:-0}))
    failed=$((failed + ${2:-1}))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
