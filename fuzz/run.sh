#!/usr/bin/env bash
# make fuzz: builds each libFuzzer target (fuzz/build.sh) and runs it for FUZZ_SECONDS (default
# 60) with the checked-in corpus as seed and the registry dictionary:
#
#   FUZZ_SECONDS=600 FUZZ_TARGETS="parser cabi" make fuzz
#   FUZZ_RUNS=10000000 FUZZ_SECONDS=7200 FUZZ_TARGETS=parser make fuzz   # stop at 10^7 inputs
#
# New coverage goes to build/fuzz/work/<target>/ (not the checked-in corpus: copy interesting
# or minimized inputs to fuzz/corpus/<target>/ by hand); crashes and broken invariants to
# build/fuzz/artifacts/<target>/ (reproduce: build/fuzz/<target> <file>, or
# build/fuzz/replay <target> <file>). Each run appends a line to
# build/fuzz/history.tsv (date, target, seconds, executions, coverage, artifacts).
# Exits 1 when a target left a new artifact.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-parser entry cabi}
runs=()
[ -n "${FUZZ_RUNS:-}" ] && runs=(-runs="$FUZZ_RUNS")
export SWIFT_BACKTRACE=enable=no
mkdir -p build/fuzz/logs
status=0
printf '%-8s %8s %12s %10s %8s %s\n' target seconds executions exec/s cov artifacts
for t in $targets; do
    fuzz/build.sh "$t" || { echo "fuzz: building $t failed"; exit 1; }
    work=build/fuzz/work/$t
    art=build/fuzz/artifacts/$t
    mkdir -p "$work" "$art"
    before=$(ls "$art" | wc -l)
    log=build/fuzz/logs/$t.log
    start=$(date +%s)
    build/fuzz/$t -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -dict=fuzz/dict/registry.dict -artifact_prefix="$art/" -print_final_stats=1 \
        "${runs[@]}" "$work" "fuzz/corpus/$t" > "$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    after=$(ls "$art" | wc -l)
    new=$((after - before))
    printf '%-8s %8s %12s %10s %8s %s\n' "$t" "$took" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$new new"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$took" "${execs:-0}" "${cov:-0}" "$new" >> build/fuzz/history.tsv
    if [ "$new" -gt 0 ] || { [ $rc -ne 0 ] && ! grep -q 'Done [0-9]* runs' "$log"; }; then
        status=1
        echo "fuzz: $t: see $log; artifacts in $art/:"
        ls -t "$art" | head -5 | sed 's/^/    /'
        grep -m3 -E 'INVARIANT BROKEN|ERROR: AddressSanitizer|ERROR: libFuzzer|Fatal error' "$log" | sed 's/^/    /'
    fi
done
exit $status
