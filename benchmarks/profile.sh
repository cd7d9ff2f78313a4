#!/usr/bin/env bash
# Instruction-count profiles (valgrind --tool=callgrind) of the library's hot paths: counts of
# instructions do not depend on what else the machine is doing, unlike times.
#   1. one durable heartbeat with N static, then N leased entries in the file (the write path's CPU)
#   2. get / resolve / list just after another process's write, N entries (re-parse + index),
#      each counted alone
# Usage: bash benchmarks/profile.sh [N]   (default 1000; needs valgrind and `make lib`'s unstripped
# .build-lib/release/libpeerregistry.so, or the library PROFILE_LIB names). Prints instructions per operation and the top functions
# by inclusive cost (demangled when swift-demangle is there); keeps the callgrind files in $PROFILE_OUT
# (default: a temporary directory, printed) for callgrind_annotate or kcachegrind.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
command -v valgrind >/dev/null || { echo "profile.sh: valgrind is needed" >&2; exit 1; }
LIB=${PROFILE_LIB:-.build-lib/release/libpeerregistry.so}
[[ -f $LIB ]] || { echo "profile.sh: $LIB is missing: make lib" >&2; exit 1; }
OUT=${PROFILE_OUT:-$(mktemp -d)}
mkdir -p "$OUT/lib"
# valgrind 3.19 cannot read the DWARF of the Swift toolchain; its symbol table is enough.
objcopy --strip-debug "$LIB" "$OUT/lib/libpeerregistry.so.0"
ln -sf libpeerregistry.so.0 "$OUT/lib/libpeerregistry.so"
for prog in registry_bench read_bench seed_registry; do
  cc -O2 -g -Iinclude -o "$OUT/$prog" "benchmarks/$prog.c" -L"$OUT/lib" -lpeerregistry -Wl,-rpath,"$OUT/lib"
done
demangle() { if command -v swift-demangle >/dev/null; then swift-demangle --simplified; else cat; fi; }
top() { (set +o pipefail
          callgrind_annotate --inclusive=yes "$1" 2>/dev/null | awk '/file:function/ {go=1; next} go && NF && !/^-/' \
          | grep -v -e 'libc-start' -e '(below main)' -e 'ld-linux' -e ':main \[' -e 'bench.c:main' | head -"${2:-25}" \
          | sed -e 's/ \[[^]]*\]$//' -e 's/???://' | demangle | cut -c1-160); }
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }

HB=20
for mode in none lease; do
  rm -rf "$OUT/hb" && mkdir -m 700 "$OUT/hb"
  valgrind --tool=callgrind --collect-atstart=no --toggle-collect=peerreg_heartbeat \
    --callgrind-out-file="$OUT/heartbeat-$mode.cg" "$OUT/registry_bench" "$OUT/hb" "$N" "$HB" "$mode" >/dev/null 2>"$OUT/heartbeat.log"
  label=static; [[ $mode == lease ]] && label="leased (held by another live process)"
  echo "== heartbeat, $N $label entries: $(( $(total "$OUT/heartbeat-$mode.cg") / HB )) instructions per call"
  top "$OUT/heartbeat-$mode.cg"
  echo
done

# Each read is counted alone (--toggle-collect), in two runs of 5 and 25 iterations: the
# difference over 20 is one first call after another process's write plus one call on the
# unchanged file, without the reader's first (cold) read of the whole file.
for op in get resolve list; do
  for reads in 5 25; do
    rm -rf "$OUT/rd" && mkdir -m 700 "$OUT/rd"
    "$OUT/seed_registry" "$OUT/rd/servers.json" "$N"
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect="peerreg_$op" --callgrind-out-file="$OUT/$op-$reads.%p.cg" \
      "$OUT/read_bench" "$OUT/rd" "$N" "$reads" seeded >/dev/null 2>"$OUT/read.log"
    reader=$(ls -S "$OUT/$op-$reads".*.cg | head -1) # the reader does the work; the writer's file is empty
    mv "$reader" "$OUT/$op-$reads.cg"
    rm -f "$OUT/$op-$reads".*.cg
  done
  echo "== $op, $N entries, just after another process's write (+ once more, unchanged): $(( ($(total "$OUT/$op-25.cg") - $(total "$OUT/$op-5.cg")) / 20 )) instructions"
done
echo
echo "== the get run's top functions (25 iterations, with its cold first read)"
top "$OUT/get-25.cg" 30
echo
echo "callgrind files: $OUT"
