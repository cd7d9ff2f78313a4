#!/usr/bin/env bash
# make bench: every figure is measured side by side with its floor or alternative in the same run.
#   1. durable register / heartbeat / unregister through the C ABI at 10, 100 and 1,000 entries,
#      against the raw floor (flock + write + fsync + rename + fsync-dir of a file of the same
#      size, benchmarks/floor.h), alternating call by call; medians of the rounds; a chart
#   2. the same with 4 and 16 processes writing at once (benchmarks/contend.c)
#   3. get / resolve / list on an unchanged file and just after another process's write
#   4. the hand-written alternatives (seed 000's Node read-modify-write; Python filelock), time
#      per registration and registrations lost by 16 concurrent writers, vs the library
#   5. per-call overhead and load time from C, Python, Node and Go
#   6. watch latency from a writer's rename to the event, in C, Python, Node and Go
#   7. `serve`: every read endpoint against /servers, and the seed's registry server (Node)
# Prints the tables and writes docs/BENCHMARKS.md and docs/register-cost.svg.
#
# Sizes (environment): ROUNDS (3), ITERATIONS (200, section 1), SIZES ("10 100 1000"),
# CONTENTION_PROCS ("4 16"), CONTENTION_WRITES (600 per run) or CONTENTION_ITERATIONS,
# CONTENTION_ENTRIES (100), READ_ITERATIONS (100), ALT_TIME_COUNT (100), ALT_WRITERS (16),
# ALT_REGS (25 per writer), ALT_ROUNDS (3), LOAD_RUNS (21), GO_BENCHTIME (1s),
# WATCH_CHANGES (1000), WATCH_ROUNDS (4).
# BENCH_DIR: where sections 1 and 2 (the durable writes) write, e.g. a loop-mounted journaled
# ext4 (this machine's root is ext4 without a journal; users run journaled filesystems).
# BENCH_ONLY="write watch ..." runs only those sections (of: write contention reads alternatives
# overhead watch serve) and prints them without touching docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
ITERATIONS=${ITERATIONS:-200}
SIZES=${SIZES:-10 100 1000}
ALL_SECTIONS="write contention reads alternatives overhead watch serve"
SECTIONS=${BENCH_ONLY:-$ALL_SECTIONS}
export ROUNDS SIZES
export PEER_REGISTRY_LIB="$PWD/build/lib/libpeerregistry.so"
unset PEER_REGISTRY_PATH
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
io_pressure() { [[ -r /proc/pressure/io ]] && awk '/^some/ {sub("avg60=", "", $3); print $3 "%"}' /proc/pressure/io || echo n/a; }
io_start=$(io_pressure)

want() { [[ " $SECTIONS " == *" $1 "* ]]; }
need() { command -v "$1" >/dev/null || { echo "make bench: $1 is needed for the '$2' section (or leave it out: BENCH_ONLY=...)" >&2; exit 1; }; }

# ---- what the sections need, checked before anything runs ----
need cc "every"
need python3 "every"
if want alternatives; then
  need node alternatives
  if ! python3 -c 'import filelock' 2>/dev/null; then
    echo "make bench: installing filelock (the Python alternative it measures)" >&2
    python3 -m pip install --quiet filelock || {
      echo "make bench: filelock is missing and could not be installed; run: python3 -m pip install filelock" >&2; exit 1; }
  fi
fi
want overhead && { need node overhead; need go overhead; }
want watch && need node watch
if want serve; then
  need node serve
  echo "make bench: building the release peer-registry for the serve section" >&2
  ${SWIFT:-swift} build -c release --product peer-registry >&2
  PEER_REGISTRY_BIN="$(${SWIFT:-swift} build -c release --show-bin-path)/peer-registry"
  export PEER_REGISTRY_BIN
fi
if want overhead || want watch || want alternatives; then
  [[ -f bindings/node/build/peer_registry.node ]] || bash bindings/node/build.sh >/dev/null
fi

CFLAGS=(-O2 -Wall -Wextra -Werror -Iinclude)
LINK=(-Lbuild/lib -lpeerregistry -Wl,-rpath,"$PWD/build/lib")
cc "${CFLAGS[@]}" -o "$OUT/floor" benchmarks/floor.c  # the floor as a program (sections 2 and 4)
for prog in registry_bench contend read_bench list_bench watch_reader seed_registry http_load; do
  cc "${CFLAGS[@]}" -o "$OUT/$prog" "benchmarks/$prog.c" "${LINK[@]}"
done
# -rdynamic: the writer's renameat() must be the one the library's call binds to
cc "${CFLAGS[@]}" -rdynamic -o "$OUT/watch_writer" benchmarks/watch_writer.c "${LINK[@]}" -ldl
cc "${CFLAGS[@]}" -o "$OUT/c_overhead" benchmarks/c_overhead.c -ldl
if want watch && command -v go >/dev/null; then
  (cd benchmarks/go && go build -o "$OUT/watchreader-go" ./watchreader)
fi

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# ---- 1. register / heartbeat / unregister against the floor ----
if want write; then
  rows=()
  : > "$OUT/write.tsv"
  for mode in none lease; do
    for n in $SIZES; do
      dir="${BENCH_DIR:-$OUT}/run-$mode-$n"; rm -rf "$dir"; mkdir -p "$dir"
      "$OUT/registry_bench" "$dir" "$n" "$ITERATIONS" "$mode" "$ROUNDS" > "$OUT/reg.txt"
      rm -rf "$dir"
      col() { awk -v c="$1" '{print $c}' "$OUT/reg.txt" | median; }
      rp50=$(col 1); rp99=$(col 2); up50=$(col 3); up99=$(col 4); size=$(col 5); get=$(col 6); res=$(col 7); lst=$(col 8)
      hp50=$(col 9); hp99=$(col 10); cpu=$(col 11); fp50=$(col 12); fp99=$(col 13); fcpu=$(col 15)
      rows+=("| $mode | $n | $size | $rp50 / $rp99 | $hp50 / $hp99 | $up50 / $up99 | $fp50 / $fp99 | **$(ratio "$rp50" "$fp50")x** / $(ratio "$rp99" "$fp99")x | $(ratio "$hp50" "$fp50")x / $(ratio "$hp99" "$fp99")x | $(ratio "$up50" "$fp50")x / $(ratio "$up99" "$fp99")x | $cpu / $fcpu (**$(ratio "$cpu" "$fcpu")x**) | $get | $res | $lst |")
      echo "$mode $n $rp50 $rp99 $fp50 $fp99 $hp50 $up50 $cpu $fcpu $res" >> "$OUT/write.tsv"
    done
  done
  header="| other entries | N | file bytes | register p50 / p99 (µs) | heartbeat p50 / p99 (µs) | unregister p50 / p99 (µs) | floor p50 / p99 (µs) | register ÷ floor p50 / p99 | heartbeat ÷ floor p50 / p99 | unregister ÷ floor p50 / p99 | CPU per write, library / floor (µs) | get (µs) | resolve (µs) | list (µs) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  table="$header"$'\n'"$(printf '%s\n' "${rows[@]}")"
  {
    echo "## 1. Durable register / heartbeat / unregister against the raw floor"
    echo
    echo "Method: \`benchmarks/registry_bench.c\` loops \`peerreg_register\` (a lease entry) → \`peerreg_heartbeat\` → \`peerreg_unregister\` with N other entries in the file, $ITERATIONS times per round, and after each of these calls one floor write (\`benchmarks/floor.h\`) of a file of the same size, so that library and floor meet the same disk moment by moment; $ROUNDS rounds on one registry filled once, medians over rounds."
    echo
    echo "- **where**: ${BENCH_DIR:-the scratch directory} ($(df -T "${BENCH_DIR:-$OUT}" | awk 'NR==2 {print $2}'); set \`BENCH_DIR\` for another filesystem)."
    echo "- **floor**: \`flock\` + write + \`fsync\` + \`rename\` + \`fsync\` of the directory for a file of the same size, nothing else."
    echo "- **heartbeat**: sets \`lastSeen\` = now: a full durable write, like register."
    echo "- **other entries**: \`none\` = static entries; \`lease\` = entries held by another live process, so every write checks N foreign leases (the realistic worst case)."
    echo "- **CPU per write**: user + system time of the writing process (CLOCK_PROCESS_CPUTIME_ID) ÷ writes: what the library adds, without the waits for the disk, which vary with everything else the machine is doing."
    echo "- **get / resolve / list**: mean cost per call against the unchanged file (a \`stat\`, a hash lookup, a liveness check, the JSON of the answer)."
    echo
    echo "DESIGN.md's bars: register/unregister within 1.5x the floor at 100 entries and 3x at 1,000."
    echo
    echo "$table"
    echo
    echo "![register cost against registry size](register-cost.svg)"
  } > "$OUT/write.md"
  cat "$OUT/write.md"
  echo
fi

# ---- 2-6 ----
for section in contention reads alternatives overhead watch serve; do
  if want "$section"; then
    echo "== $section ($(($(date +%s) - started)) s elapsed)" >&2
    python3 benchmarks/sections.py "$section" --bin "$OUT" --out "$OUT"
  fi
done
python3 benchmarks/sections.py summary --bin "$OUT" --out "$OUT"

elapsed=$(($(date +%s) - started))
if [[ "$SECTIONS" != "$ALL_SECTIONS" ]]; then
  echo "make bench: BENCH_ONLY=\"$SECTIONS\": docs/BENCHMARKS.md left as it was (${elapsed} s)"
  exit 0
fi
python3 benchmarks/sections.py chart --bin "$OUT" --out "$OUT"
{
  echo "# Benchmarks"
  echo
  echo "Generated by \`make bench\` (benchmarks/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC') in ${elapsed} s."
  echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), filesystem $(df -T . | awk 'NR==2 {print $2}'); load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; I/O pressure (share of the last minute some task waited for the disk) $io_start at the start, $(io_pressure) at the end. The machine is shared: figures are ratios measured side by side."
  echo "Tools: $(cc --version | head -1); Python $(python3 -c 'import platform; print(platform.python_version())'); Node $(node --version 2>/dev/null || echo n/a); $(go version 2>/dev/null | awk '{print $3}' || echo 'Go n/a')."
  echo "Command: \`${BENCH_DIR:+BENCH_DIR=$BENCH_DIR }make bench\` (sizes: ROUNDS=$ROUNDS ITERATIONS=$ITERATIONS SIZES=\"$SIZES\" and the defaults of the other variables listed in benchmarks/run.sh). Instruction profiles of the hot paths (callgrind, independent of machine load): \`bash benchmarks/profile.sh [N]\`."
  echo
  cat "$OUT/summary.md"
  for section in write contention reads alternatives overhead watch serve; do
    echo
    cat "$OUT/$section.md"
  done
  # The sections other targets write (make bench-supervise, bench-agent, bench-gateway) and the
  # hand-written ones stay as they were: everything after the generated sections 1-7.
  python3 - docs/BENCHMARKS.md <<'PY'
import re, sys
try:
    text = open(sys.argv[1]).read()
except OSError:
    sys.exit(0)
# A section another target writes starts at its "<!-- bench-X:begin -->" marker.
parts = re.split(r"(?m)^(?=## |<!-- [a-z-]+:begin -->)", text)
kept = [p for p in parts[1:] if not re.match(r"## (Against DESIGN\.md's bars|[1-7]\. )", p)]
if kept:
    sys.stdout.write("\n" + "".join(kept).rstrip("\n") + "\n")
PY
} > "$OUT/BENCHMARKS.md"
mv "$OUT/BENCHMARKS.md" docs/BENCHMARKS.md
echo "wrote docs/BENCHMARKS.md (${elapsed} s)"
