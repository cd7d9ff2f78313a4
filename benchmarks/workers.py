#!/usr/bin/env python3
"""Registration workers in Python for benchmarks/sections.py (alternatives).

    python3 workers.py <approach> <mode> <path> <worker> <count>

approach: filelock        -- the careful hand-written version: filelock.FileLock on <path>.lock,
                             json.load, append, json.dump to a temp file, os.replace (no fsync,
                             as such code is usually written)
          filelock-fsync  -- the same, made durable: fsync of the temp file and of the directory
          lib             -- the library through the Python binding (register, liveness "none")
mode: time   -- re-register the same entry <count> times; prints {"lat_us": [...]}
      crowd  -- print "ready", wait for a line on stdin, then register <count> distinct entries
                (ids w<worker>-<j>); prints {"acked": [ids], "errors": n, "error": "first message"}
"""
import json
import os
import sys
import time
from pathlib import Path

approach, mode, path, worker, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])


def entry(id_: str, port: int) -> dict:
    return {
        "id": id_,
        "name": f"Benchmark server {id_}",
        "url": f"http://127.0.0.1:{port}/mcp",
        "capabilities": {"tools": [f"search-{id_}", f"fetch-{id_}", "summarize"], "resources": [f"resource://{id_}/"], "prompts": [f"plan-{id_}"]},
        "metadata": {"team": "bench", "region": "local"},
    }


if approach in ("filelock", "filelock-fsync"):
    from filelock import FileLock

    lock = FileLock(path + ".lock")
    durable = approach == "filelock-fsync"
    directory = os.path.dirname(os.path.abspath(path))

    def register(e: dict) -> None:
        with lock:
            try:
                with open(path) as f:
                    data = json.load(f)
            except FileNotFoundError:
                data = {"servers": []}
            data["servers"] = [s for s in data["servers"] if s.get("id") != e["id"]]
            data["servers"].append({**e, "pid": os.getpid(), "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(data, f, indent=2)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
            if durable:
                fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

elif approach == "lib":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bindings" / "python" / "src"))
    import peer_registry

    reg = peer_registry.Registry(path)

    def register(e: dict) -> None:
        reg.register({**e, "liveness": "none"})

else:
    raise SystemExit(f"unknown approach {approach}")

if mode == "time":
    e = entry("bench", 9999)
    for _ in range(5):
        register(e)
    lat = []
    for _ in range(count):
        a = time.perf_counter()
        register(e)
        lat.append((time.perf_counter() - a) * 1e6)
    print(json.dumps({"lat_us": lat}), flush=True)
elif mode == "crowd":
    print("ready", flush=True)
    sys.stdin.readline()
    acked, errors, first = [], 0, ""
    for j in range(count):
        id_ = f"w{worker}-{j}"
        try:
            register(entry(id_, 20000 + worker * 1000 + j))
            acked.append(id_)
        except Exception as exc:  # an error is not an acknowledgement: not counted as lost
            errors += 1
            first = first or str(exc)[:200]
    print(json.dumps({"acked": acked, "errors": errors, "error": first}), flush=True)
else:
    raise SystemExit(f"unknown mode {mode}")
