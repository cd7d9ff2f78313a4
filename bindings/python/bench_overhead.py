#!/usr/bin/env python3
"""Per-call overhead of the binding: Registry.get vs peerreg_version_number, and load time.

    PEER_REGISTRY_LIB=build/lib/libpeerregistry.so python3 bindings/python/bench_overhead.py

version_number is the cheapest possible ctypes call (no arguments, no JSON), the floor any
call pays. get adds argument encoding, the error out-parameter, the library's lookup, copying
and freeing the JSON and json.loads. get_raw is the same C call without the Python-side work.
"""

from __future__ import annotations

import ctypes
import sys
import tempfile
import time
from pathlib import Path

started = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
import peer_registry  # noqa: E402

imported = time.perf_counter()
lib = peer_registry.load_library()
loaded = time.perf_counter()


def per_call(fn, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main() -> None:
    n = 100_000
    with tempfile.TemporaryDirectory() as tmp, peer_registry.Registry(Path(tmp) / "servers.json") as reg:
        for i in range(99):
            reg.register({"id": f"filler-{i}", "url": f"http://127.0.0.1:{1000 + i}/mcp", "liveness": "none"})
        reg.register({"id": "bench", "url": "http://127.0.0.1:9/mcp", "capabilities": {"tools": ["t"]}})

        version = per_call(lib.peerreg_version_number, n)
        get = per_call(lambda: reg.get("bench"), n)

        handle = reg._handle
        out, err = ctypes.c_void_p(), ctypes.c_void_p()

        def get_raw() -> None:
            lib.peerreg_get(handle, b"bench", ctypes.byref(out), ctypes.byref(err))
            lib.peerreg_free(out)

        raw = per_call(get_raw, n)

    print(f"library              {lib.path} ({lib.version})")
    print(f"import peer_registry {(imported - started) * 1e3:8.2f} ms")
    print(f"load library         {(loaded - imported) * 1e3:8.2f} ms")
    print(f"version_number/call  {version * 1e6:8.3f} us")
    print(f"get/call             {get * 1e6:8.3f} us   (100 entries in the file)")
    print(f"get/call, raw ctypes {raw * 1e6:8.3f} us   (no Python-side encoding or JSON)")
    print(f"ratio get/version    {get / version:8.1f}x")


if __name__ == "__main__":
    main()
