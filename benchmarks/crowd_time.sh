#!/usr/bin/env bash
# Wall time of K Python crowd workers (tests/crowd/worker.py: register, list, resolve,
# set_health, unregister per iteration) writing into one fresh registry at once — the crowd
# test's load without its checks, to compare builds side by side:
#   bash benchmarks/crowd_time.sh LIB [K=16] [ITERATIONS=30]
# LIB is a libpeerregistry.so; run it for two builds back to back and compare the times.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
LIB=$1 K=${2:-16} IT=${3:-30}
export PEER_REGISTRY_LIB=$LIB PYTHONPATH=$repo/bindings/python/src PYTHONDONTWRITEBYTECODE=1
unset PEER_REGISTRY_PATH
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
start=$(date +%s.%N)
pids=()
for i in $(seq 0 $((K - 1))); do
  # The worker waits for GO, runs its iterations, then serves commands until end of input.
  ( { echo GO; } | python3 "$repo/tests/crowd/worker.py" "$d/servers.json" "py-$i" "$IT" > "$d/out.$i" 2> "$d/err.$i" ) &
  pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
end=$(date +%s.%N)
if [[ $failed != 0 ]]; then cat "$d"/err.* >&2; echo "crowd_time: a worker failed" >&2; exit 1; fi
echo "K=$K iterations=$IT lib=$LIB: $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}') s"
