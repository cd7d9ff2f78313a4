#!/usr/bin/env bash
# Two builds of the library side by side, interleaved round by round in the same minutes, so
# that a shared machine's load falls on both alike:
#   - durable writes with N other entries, static and leased (`registry_bench`): register p50
#     against the floor's in the same loop, CPU per write, and lease ÷ static;
#   - the first get / resolve after another process's write (`read_bench`), against the floor
#     of reading the whole new file in the same loop.
#
# Usage: bash benchmarks/side_by_side.sh BEFORE.so AFTER.so [N=1000] [ROUNDS=3] [ITERATIONS=100]
#   e.g. git stash; make lib; cp .build-lib/release/libpeerregistry.so /tmp/before.so; git stash pop;
#        make lib; bash benchmarks/side_by_side.sh /tmp/before.so .build-lib/release/libpeerregistry.so
# Prints medians over rounds (each round's figure is itself a p50 of ITERATIONS calls).
# Set BENCH_DIR to run on another filesystem (e.g. a loop-mounted ext4).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { sed -n 2,13p "$0"; exit 2; }
N=${3:-1000}; ROUNDS=${4:-3}; ITER=${5:-100}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
WORK=${BENCH_DIR:-$OUT}
for side in before after; do
  lib=$1; [[ $side == after ]] && lib=$2
  [[ -f $lib ]] || { echo "side_by_side.sh: no library at $lib" >&2; exit 1; }
  mkdir -p "$OUT/$side"
  cp "$lib" "$OUT/$side/libpeerregistry.so.0"
  ln -sf libpeerregistry.so.0 "$OUT/$side/libpeerregistry.so"
  for prog in registry_bench read_bench seed_registry; do
    cc -O2 -Iinclude -o "$OUT/$side/$prog" "benchmarks/$prog.c" -L"$OUT/$side" -lpeerregistry -Wl,-rpath,"$OUT/$side"
  done
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for r in $(seq "$ROUNDS"); do
  for side in before after; do
    for mode in none lease; do
      d="$WORK/sbs-$side-$mode"; rm -rf "$d"; mkdir -m 700 "$d"
      "$OUT/$side/registry_bench" "$d" "$N" "$ITER" "$mode" 1 >> "$OUT/$side-$mode.txt"
      rm -rf "$d"
    done
    d="$WORK/sbs-$side-read"; rm -rf "$d"; mkdir -m 700 "$d"
    "$OUT/$side/seed_registry" "$d/servers.json" "$N"
    "$OUT/$side/read_bench" "$d" "$N" "$ITER" seeded >> "$OUT/$side-read.txt"
    rm -rf "$d"
  done
done
col() { awk -v c="$2" '{print $c}' "$OUT/$1.txt" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "N=$N, $ROUNDS rounds of $ITER, $(date -u '+%F %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg), on $(df -T "$WORK" | awk 'NR==2 {print $2}')"
echo
echo "| | before | after |"
echo "|---|---|---|"
for mode in none lease; do
  b1=$(col before-$mode 1); a1=$(col after-$mode 1); bf=$(col before-$mode 12); af=$(col after-$mode 12)
  echo "| register p50, $mode entries (µs; ÷ floor p50) | $b1 ($(ratio "$b1" "$bf")x) | $a1 ($(ratio "$a1" "$af")x) |"
  echo "| CPU per write, $mode entries (µs; floor's) | $(col before-$mode 11) ($(col before-$mode 15)) | $(col after-$mode 11) ($(col after-$mode 15)) |"
done
echo "| register p50, lease ÷ static | $(ratio "$(col before-lease 1)" "$(col before-none 1)")x | $(ratio "$(col after-lease 1)" "$(col after-none 1)")x |"
echo "| CPU per write, lease ÷ static | $(ratio "$(col before-lease 11)" "$(col before-none 11)")x | $(ratio "$(col after-lease 11)" "$(col after-none 11)")x |"
for pair in "get 3" "resolve 7" "list 11"; do
  set -- $pair
  b=$(col before-read "$2"); a=$(col after-read "$2"); bf=$(col before-read 15); af=$(col after-read 15)
  echo "| first $1 after another process's write, p50 (µs; ÷ reading the file) | $b ($(ratio "$b" "$bf")x) | $a ($(ratio "$a" "$af")x) |"
done
echo "| reading the whole new file (the floor), p50 (µs) | $(col before-read 15) | $(col after-read 15) |"
