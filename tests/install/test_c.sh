#!/usr/bin/env bash
# C, as a user outside this repository: `make install PREFIX=<temp>` (and a DESTDIR staging),
# then a C program built only with `pkg-config` against that prefix, run with an empty
# environment: register -> list -> watch event -> unregister. Then the installed CLI on the
# default registry under a temp HOME, and `make uninstall`.
# Run from the repository root after `make lib`. $PEER_REGISTRY_CLI: an already built
# peer-registry to install (default: a debug build made here).
set -euo pipefail

root="$PWD"
[ -f "$root/include/peer_registry.h" ] || { echo "test_c.sh: run from the repository root" >&2; exit 2; }
for tool in cc pkg-config readelf; do
    command -v "$tool" >/dev/null || { echo "test_c.sh: $tool is missing: apt-get install -y gcc pkg-config binutils" >&2; exit 1; }
done
if [ -z "${PEER_REGISTRY_CLI:-}" ]; then
    swift build --product peer-registry
    PEER_REGISTRY_CLI="$(swift build --show-bin-path)/peer-registry"
fi

tmp="$(mktemp -d /tmp/peerreg-install-c.XXXXXX)"
case "$tmp" in "$root"/*) echo "test_c.sh: temp dir $tmp is inside the repository" >&2; exit 2;; esac
trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp/home"
mkdir -p "$HOME"
prefix="$tmp/prefix"
step() { echo "-- test_c: $*"; }
die() { echo "test_c.sh: FAILED: $*" >&2; exit 1; }

step "make install PREFIX=$prefix"
make --no-print-directory install PREFIX="$prefix" PEER_REGISTRY_CLI="$PEER_REGISTRY_CLI" >"$tmp/install.log" 2>&1 \
    || { cat "$tmp/install.log" >&2; die "make install"; }
[ -f "$prefix/lib/libpeerregistry.so.0.2.0" ] || die "no lib/libpeerregistry.so.0.2.0"
[ "$(readlink "$prefix/lib/libpeerregistry.so.0")" = libpeerregistry.so.0.2.0 ] || die "libpeerregistry.so.0 link"
[ "$(readlink "$prefix/lib/libpeerregistry.so")" = libpeerregistry.so.0 ] || die "libpeerregistry.so link"
# Here-strings, not pipes into grep -q: grep exits at the first match, and under pipefail the
# writer's SIGPIPE would fail the check (it did, once, for ldd).
grep -q 'SONAME.*\[libpeerregistry.so.0\]' <<<"$(readelf -d "$prefix/lib/libpeerregistry.so.0.2.0")" || die "SONAME"
cmp -s include/peer_registry.h "$prefix/include/peer_registry.h" || die "installed header differs"
[ -x "$prefix/bin/peer-registry" ] || die "no bin/peer-registry"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion peerregistry)" = 0.2.0 ] || die "pkg-config --modversion"
[ "$(pkg-config --variable=prefix peerregistry)" = "$prefix" ] || die "pkg-config prefix"
grep -q "$root" "$prefix/lib/pkgconfig/peerregistry.pc" && die "the .pc file points into the repository"

step "make install DESTDIR=$tmp/stage PREFIX=/opt/peer-registry (staging)"
make --no-print-directory install DESTDIR="$tmp/stage" PREFIX=/opt/peer-registry PEER_REGISTRY_CLI="$PEER_REGISTRY_CLI" >"$tmp/stage.log" 2>&1 \
    || { cat "$tmp/stage.log" >&2; die "make install DESTDIR"; }
[ -f "$tmp/stage/opt/peer-registry/lib/libpeerregistry.so.0.2.0" ] || die "DESTDIR: library not staged"
grep -qx 'prefix=/opt/peer-registry' "$tmp/stage/opt/peer-registry/lib/pkgconfig/peerregistry.pc" || die "DESTDIR: .pc prefix"
[ ! -e /opt/peer-registry ] || [ -n "$(ls -A /opt/peer-registry 2>/dev/null)" ] || die "DESTDIR: wrote to /opt"

step "cc consumer.c \$(pkg-config --cflags --libs peerregistry)"
mkdir "$tmp/app"
cp tests/install/consumer.c "$tmp/app/"
(cd "$tmp/app" && cc -std=c11 -Wall -Wextra -Werror consumer.c $(pkg-config --cflags --libs peerregistry) -o consumer)
grep -q "libpeerregistry.so.0 => $prefix/lib/libpeerregistry.so.0" <<<"$(ldd "$tmp/app/consumer")" \
    || { ldd "$tmp/app/consumer" >&2; die "the program does not load the installed library"; }

step "run it with an empty environment (no LD_LIBRARY_PATH, no PEER_REGISTRY_*)"
(cd "$tmp/app" && env -i HOME="$HOME" PATH=/usr/bin:/bin ./consumer "$HOME/c-registry/servers.json" c-consumer) | tee "$tmp/consumer.out"
for line in "library 0.2.0" "registered " "listed " "watch: added c-consumer" "watch: removed c-consumer" "unregistered c-consumer"; do
    grep -q "^$line" "$tmp/consumer.out" || die "consumer did not print '$line'"
done

step "the installed CLI on the default registry (\$HOME/.peer-plan/servers.json)"
cli="$prefix/bin/peer-registry"
run_cli() { env -i HOME="$HOME" PATH=/usr/bin:/bin "$cli" "$@"; }
run_cli register --static --id cli-entry --url http://127.0.0.1:8932/mcp --tool cliTool --compact >/dev/null
[ -f "$HOME/.peer-plan/servers.json" ] || die "the CLI did not write \$HOME/.peer-plan/servers.json"
grep -q '"id":"cli-entry"' <<<"$(run_cli list --json)" || die "peer-registry list does not show cli-entry"
[ "$(run_cli resolve tool cliTool --compact | grep -o '"id":"cli-entry"')" = '"id":"cli-entry"' ] || die "resolve tool cliTool"
# The C program sees what the CLI wrote, in the same file.
(cd "$tmp/app" && env -i HOME="$HOME" PATH=/usr/bin:/bin ./consumer "$HOME/.peer-plan/servers.json" c-beside-cli) >/dev/null
run_cli unregister cli-entry >/dev/null
grep -q '"id":"cli-entry"' <<<"$(run_cli list --json)" && die "cli-entry still listed after unregister"

step "make uninstall PREFIX=$prefix"
make --no-print-directory uninstall PREFIX="$prefix" >/dev/null
left="$(find "$prefix" -type f -o -type l)"
[ -z "$left" ] || die "make uninstall left: $left"
echo "test_c: ok (library $(stat -c %s "$root/build/lib/libpeerregistry.so.0.2.0") bytes)"
