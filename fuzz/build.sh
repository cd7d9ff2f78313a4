#!/usr/bin/env bash
# Builds the fuzz targets from RegistryKit's sources. Each build is one swiftc invocation in
# which the target files, fuzz/targets/Checks.swift and the sources are one module (named
# RegistryKit), so internal types (JSONParser, RegistryDocument, ...) are reachable; the C
# shims (Sources/CRegistryShims) are compiled by clang and linked in.
#
#   fuzz/build.sh <parser|entry|cabi>   libFuzzer + AddressSanitizer binary build/fuzz/<target>:
#                                        swiftc -sanitize=fuzzer,address, shims with
#                                        -fsanitize=fuzzer-no-link,address, fuzz/libfuzzer_entry.c
#   fuzz/build.sh replay                 build/fuzz/replay: all three targets, no sanitizer, with
#                                        fuzz/replay_main.c (replays corpus files; make test)
#
# Rebuilds only when an input changed. swiftc fails when another engineer saves a source
# file during the build ("modified during the build"): then it waits a little and retries.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:?usage: fuzz/build.sh <parser|entry|cabi|replay>}
case "$what" in parser|entry|cabi|replay) ;; *) echo "fuzz/build.sh: unknown target $what" >&2; exit 2;; esac
out=build/fuzz
mkdir -p "$out/obj-$what" "$out/shims"
bin=$out/$what

sources=$(find Sources/RegistryKit -name '*.swift' | sort)
targets="fuzz/targets/Checks.swift"
flags=(-parse-as-library -swift-version 6 -suppress-warnings -module-name RegistryKit -package-name peer_registry -I "$out/shims")
if [ "$what" = replay ]; then
    targets="$targets fuzz/targets/parser.swift fuzz/targets/entry.swift fuzz/targets/cabi.swift"
else
    targets="$targets fuzz/targets/$what.swift"
fi
if [ "$what" = cabi ] || [ "$what" = replay ]; then
    # The C ABI's exports, compiled into the same module (their `import RegistryKit` is ignored).
    sources="$sources $(find Sources/CRegistry -name '*.swift' | sort)"
    flags+=(-I Sources/CPeerRegistryHeader/include)
fi
deps="$sources $targets fuzz/build.sh fuzz/libfuzzer_entry.c fuzz/replay_main.c Sources/CRegistryShims/registry_shims.c Sources/CRegistryShims/include/registry_shims.h include/peer_registry.h"
if [ -x "$bin" ] && [ -z "$(find $deps -newer "$bin" 2>/dev/null | head -1)" ]; then
    exit 0
fi

# SwiftPM makes a module map for CRegistryShims from its include/ directory; so do we.
cat > "$out/shims/module.modulemap" <<MAP
module CRegistryShims {
    header "$PWD/Sources/CRegistryShims/include/registry_shims.h"
    export *
}
MAP

obj=$out/obj-$what
if [ "$what" = replay ]; then
    clang -c -O1 -g -ISources/CRegistryShims/include Sources/CRegistryShims/registry_shims.c -o "$obj/registry_shims.o"
    clang -c -O1 -g fuzz/replay_main.c -o "$obj/main.o"
    flags+=(-Onone -g)
else
    clang -c -O1 -g -fsanitize=fuzzer-no-link,address -ISources/CRegistryShims/include \
        Sources/CRegistryShims/registry_shims.c -o "$obj/registry_shims.o"
    clang -c -O1 -g -DTARGET=peerreg_fuzz_$what fuzz/libfuzzer_entry.c -o "$obj/main.o"
    flags+=(-sanitize=fuzzer,address -O -g)
fi

echo "fuzz/build.sh: building $bin" >&2
for attempt in 1 2 3 4 5; do
    # The linker warns once per ASan helper symbol ("Cannot export local symbol"): noise, dropped.
    if swiftc "${flags[@]}" $sources $targets "$obj/registry_shims.o" "$obj/main.o" -o "$bin.tmp" \
        2> >(grep -v -e 'Cannot export local symbol' >&2); then
        mv "$bin.tmp" "$bin"
        exit 0
    fi
    echo "fuzz/build.sh: build failed (attempt $attempt); retrying in 10 s in case a source was being saved" >&2
    sleep 10
done
exit 1
