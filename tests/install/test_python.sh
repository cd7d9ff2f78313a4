#!/usr/bin/env bash
# Python, as a user outside this repository: a fresh venv, `pip install` of the platform wheel
# from `make dist-python` (offline: --no-index), then, from a directory outside the repository
# with an empty environment (no PYTHONPATH, no PEER_REGISTRY_LIB, HOME in a temp dir):
# register -> list -> watch event -> unregister, blocking and asyncio, with the library the wheel
# carries. Then `pip uninstall` leaves nothing behind. Run from the repository root after
# `make dist-python`.
set -euo pipefail

root="$PWD"
[ -f "$root/include/peer_registry.h" ] || { echo "test_python.sh: run from the repository root" >&2; exit 2; }
shopt -s nullglob
wheels=("$root"/build/dist/peer_registry-*-py3-none-linux_"$(uname -m)".whl)
[ ${#wheels[@]} -eq 1 ] || { echo "test_python.sh: expected one wheel in build/dist (make dist-python), found ${#wheels[@]}" >&2; exit 1; }
wheel="${wheels[0]}"
python3 -c 'import venv, ensurepip' 2>/dev/null \
    || { echo "test_python.sh: python3 lacks venv/ensurepip: apt-get install -y python3-venv" >&2; exit 1; }

tmp="$(mktemp -d /tmp/peerreg-install-py.XXXXXX)"
case "$tmp" in "$root"/*) echo "test_python.sh: temp dir $tmp is inside the repository" >&2; exit 2;; esac
trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp/home"
mkdir -p "$HOME"
step() { echo "-- test_python: $*"; }
die() { echo "test_python.sh: FAILED: $*" >&2; exit 1; }

step "the wheel: $(basename "$wheel") ($(stat -c %s "$wheel") bytes)"
python3 - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert "peer_registry/libpeerregistry.so.0" in names, names
assert "peer_registry/py.typed" in names and "peer_registry/aio.py" in names and "peer_registry/mcp.py" in names, names
assert not [n for n in names if ".mypy_cache" in n or "__pycache__" in n or "/tests/" in n], names
PY

step "python3 -m venv + pip install --no-index the wheel"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --no-index --disable-pip-version-check "$wheel"
clean_env=(env -i HOME="$HOME" PATH="$tmp/venv/bin:/usr/bin:/bin")

step "register -> list -> watch event -> unregister, from $tmp/work"
mkdir "$tmp/work"
cat > "$tmp/work/use.py" <<'PY'
import asyncio, os, sys
import peer_registry
from peer_registry.aio import AsyncRegistry

with peer_registry.Registry() as reg:                 # default: ~/.peer-plan/servers.json
    lib = reg.lib
    assert lib.source == "package", lib
    assert lib.path.startswith(sys.prefix), (lib.path, sys.prefix)
    print("library", lib.version, "from", lib.path)
    with reg.watch() as watch:
        entry = reg.register({"id": "py-installed", "url": "http://127.0.0.1:8933/mcp",
                              "capabilities": {"tools": ["pyTool"]}})
        print("registered", entry["id"], entry["liveness"])
        assert [e["id"] for e in reg.list(tool="pyTool")] == ["py-installed"]
        print("listed", [e["id"] for e in reg.list()])
        event = watch.next(timeout=5)
        assert event and [e["id"] for e in event["added"]] == ["py-installed"], event
        print("watch: added", event["added"][0]["id"])
        reg.unregister("py-installed")
        event = watch.next(timeout=5)
        assert event and [e["id"] for e in event["removed"]] == ["py-installed"], event
        print("watch: removed", event["removed"][0]["id"])
    assert reg.list() == []
assert os.path.exists(os.path.expanduser("~/.peer-plan/servers.json"))

async def main():
    async with AsyncRegistry() as reg:
        watch = await reg.watch()
        async with watch:
            await reg.register({"id": "py-async", "url": "http://127.0.0.1:8934/mcp"})
            event = await asyncio.wait_for(watch.__anext__(), 5)
            assert [e["id"] for e in event["added"]] == ["py-async"], event
            await reg.unregister("py-async")
            event = await asyncio.wait_for(watch.__anext__(), 5)
            assert [e["id"] for e in event["removed"]] == ["py-async"], event
    print("asyncio: added and removed py-async")

asyncio.run(main())
print("ok")
PY
(cd "$tmp/work" && "${clean_env[@]}" python use.py) | tee "$tmp/use.out"
[ "$(tail -n 1 "$tmp/use.out")" = ok ] || die "the installed package did not complete the round trip"

step "pip uninstall leaves nothing behind"
site="$("$tmp/venv/bin/python" -c 'import peer_registry, os; print(os.path.dirname(peer_registry.__file__))')"
"$tmp/venv/bin/python" -m pip uninstall --quiet --yes peer-registry
[ ! -e "$site" ] || die "pip uninstall left $site: $(ls -A "$site")"
echo "test_python: ok"
