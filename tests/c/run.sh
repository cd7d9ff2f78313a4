#!/usr/bin/env bash
# The C ABI tests (make test-c): compiled with -Wall -Wextra -Werror against the header, linked
# against build/lib, run once plainly and once under valgrind memcheck (no invalid access, no
# definite or indirect leak); the exported symbols must equal the header's functions; and the
# library must load with dlopen in an empty environment without any Swift runtime.
set -euo pipefail
cd "$(dirname "$0")/../.."
LIB=build/lib/libpeerregistry.so.0
[ -e "$LIB" ] || { echo "tests/c: $LIB missing; run: make lib" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "tests/c: valgrind is missing; install it with: apt-get install -y valgrind" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'chmod -R u+rwx "$OUT" 2>/dev/null; rm -rf "$OUT"' EXIT
CFLAGS="-std=c11 -Wall -Wextra -Werror -O1 -g -Iinclude"

cc $CFLAGS tests/c/test_abi.c -Lbuild/lib -lpeerregistry -Wl,-rpath,"$PWD/build/lib" -lpthread -o "$OUT/test_abi"
cc $CFLAGS tests/c/test_fork_threads.c -Lbuild/lib -lpeerregistry -Wl,-rpath,"$PWD/build/lib" -lpthread -o "$OUT/test_fork_threads"
cc $CFLAGS tests/c/test_dlopen.c -ldl -o "$OUT/test_dlopen"
cc $CFLAGS tests/c/test_inotify_order.c -o "$OUT/test_inotify_order"

echo "== the kernel ordering the lease tracker relies on (close event queued before the flock is released)"
mkdir -p "$OUT/order"
"$OUT/test_inotify_order" "$OUT/order" 300

echo "== exported symbols vs include/peer_registry.h"
grep -oE 'peerreg_[a-z_]+\(' include/peer_registry.h | tr -d '(' | sort -u > "$OUT/header.txt"
nm -D --defined-only --extern-only "$LIB" | awk '{print $3}' | sed 's/@.*//' | grep -v '^PEERREG_0$' | sort -u > "$OUT/exports.txt"
if ! diff -u "$OUT/header.txt" "$OUT/exports.txt"; then echo "exports: 0 passed, 1 failed"; exit 1; fi
if ldd "$LIB" | grep -i swift; then echo "libpeerregistry links a Swift runtime library"; exit 1; fi
echo "exports: $(wc -l < "$OUT/header.txt") functions, exactly the header's; ldd shows no Swift library"

echo "== C ABI tests"
mkdir -p "$OUT/plain" "$OUT/vg"
PEER_REGISTRY_LOCK_TIMEOUT_MS=300 "$OUT/test_abi" "$OUT/plain"

echo "== a forked child (no exec) of a process that used the library, writing from two threads"
mkdir -p "$OUT/fork"
PEER_REGISTRY_LOCK_TIMEOUT_MS=60000 "$OUT/test_fork_threads" "$OUT/fork" 4 40

echo "== C ABI tests under valgrind memcheck"
PEER_REGISTRY_LOCK_TIMEOUT_MS=300 valgrind -q --error-exitcode=99 --leak-check=full \
  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
  "$OUT/test_abi" "$OUT/vg"

echo "== dlopen in an empty environment"
mkdir -p "$OUT/dl"
env -i PATH=/usr/bin:/bin "$OUT/test_dlopen" "$PWD/$LIB" "$OUT/dl"
