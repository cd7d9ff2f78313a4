#!/usr/bin/env bash
# make test-coarse: the registry on a filesystem with 1-second mtimes, as many users have (ext3,
# ext4 with 128-byte inodes, network filesystems): a loop-mounted `mkfs.ext4 -I 128` image. Runs
# tests/coarse/coarse_test.py (lost writes, stale reads, missed watch events), then the
# cross-language crowd test and the torture kill section with their registries on it.
# Needs root (mount) and e2fsprogs; stops with the command to run otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
if [ "$(id -u)" != 0 ]; then
    echo "tests/coarse: needs root to loop-mount the test filesystem; run: sudo make test-coarse" >&2
    exit 1
fi
if ! command -v mkfs.ext4 >/dev/null; then
    echo "tests/coarse: mkfs.ext4 is missing; installing e2fsprogs" >&2
    apt-get install -y e2fsprogs >/dev/null || { echo "run: apt-get update && apt-get install -y e2fsprogs" >&2; exit 1; }
fi
export PEER_REGISTRY_LIB="${PEER_REGISTRY_LIB:-$repo/build/lib/libpeerregistry.so}"
[ -f "$PEER_REGISTRY_LIB" ] || { echo "tests/coarse: $PEER_REGISTRY_LIB missing; run: make lib" >&2; exit 1; }
export PYTHONPATH="$repo/bindings/python/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

work=$(mktemp -d /tmp/peerreg-coarse.XXXXXX)
mnt="$work/mnt"
mkdir -p "$mnt"
cleanup() { umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
truncate -s 256M "$work/fs.img"
mkfs.ext4 -q -F -I 128 "$work/fs.img" 2>/dev/null
mount -o loop "$work/fs.img" "$mnt"
chmod 700 "$mnt"
touch "$mnt/probe"
ns=$(stat -c %y "$mnt/probe" | sed -E 's/.*\.([0-9]+).*/\1/')
echo "== coarse filesystem at $mnt (mtime fraction: .$ns)"
[ "$ns" = 000000000 ] || { echo "tests/coarse: the test filesystem has fine-grained mtimes; expected 1-second ones" >&2; exit 1; }
rm "$mnt/probe"

python3 tests/coarse/coarse_test.py "$mnt"
echo "== crowd test on the coarse filesystem"
# 26 processes contending for one lock on a loop device (slow fsync) can wait longer than the
# default 5 s lock timeout: flock is not fair (issue 15). What this run checks is that nothing is
# lost, so the workers may wait up to 60 s.
PEER_REGISTRY_LOCK_TIMEOUT_MS=60000 TMPDIR="$mnt" bash tests/crowd/run.sh
echo "== torture kill section on the coarse filesystem"
python3 tests/torture/run.py --size small --only kill --dir "$mnt"
echo "make test-coarse: every suite passed on the coarse filesystem"
