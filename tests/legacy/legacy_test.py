#!/usr/bin/env python3
"""The library beside writers that bypass it (issue 11; DESIGN: "Beside writers that bypass the
lock"): seed 000's own writer logic — read servers.json, JSON.parse (an unparseable file starts
over empty), drop its own port, push {port, url, pid, startedAt}, write the file in place with no
lock and no rename — run by 3 processes in a loop for DURATION seconds, while library processes
hold lease entries and register/unregister others, and a monitor samples the file every 2 ms.

Checked: no library call returns PEERREG_ECORRUPT (a torn read of a file still being rewritten is
retried), and every entry held by a live library process is back in the file within the bound
(anti-entropy). Printed: calls made, ECORRUPT results, acknowledged registrations, held entries
found missing at the end, the longest and p99 absence of a held entry.

    legacy_test.py [--duration 8] [--bound-ms 1000]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

LEGACY = r"""
import json, os, random, sys, time
path, port, until = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rng = random.Random(port)
def load():
    try:
        with open(path) as f:
            return json.loads(f.read())
    except Exception:
        return {"servers": []}
writes = 0
while time.time() < until:
    doc = load()
    servers = [s for s in doc.get("servers", []) if s.get("port") != port]
    if rng.random() < 0.5:
        servers.append({"port": port, "url": f"ws://localhost:{port}", "pid": os.getpid(),
                        "startedAt": int(time.time() * 1000)})
    doc["servers"] = servers
    with open(path, "w") as f:          # in place: truncate, then write
        f.write(json.dumps(doc, indent=2))
    writes += 1
    time.sleep(rng.uniform(0.0005, 0.004))
print(writes)
"""

LIBRARY = r"""
import json, sys, time
import peer_registry as pr
path, name, until = sys.argv[1], sys.argv[2], float(sys.argv[3])
reg = pr.Registry(path)
stats = {"calls": 0, "corrupt": 0, "acked": 0, "errors": []}
held = []
for k in range(3):
    reg.register({"id": f"{name}-held-{k}", "url": f"http://127.0.0.1:{7000 + k}/mcp", "capabilities": {"tools": [f"t{k}"]}})
    held.append(f"{name}-held-{k}")
    stats["acked"] += 1
print(json.dumps({"held": held}), flush=True)
i = 0
while time.time() < until:
    cid = f"{name}-churn-{i}"
    for op in ("register", "list", "get", "unregister"):
        stats["calls"] += 1
        try:
            if op == "register":
                reg.register({"id": cid, "url": "http://127.0.0.1:7999/mcp"}); stats["acked"] += 1
            elif op == "list":
                reg.list()
            elif op == "get":
                reg.get(held[i % 3])
            else:
                reg.unregister(cid)
        except pr.RegistryError as e:
            if "ECORRUPT" in str(type(e).__name__).upper() or getattr(e, "code", None) == -4:
                stats["corrupt"] += 1
            elif len(stats["errors"]) < 5:
                stats["errors"].append(f"{op}: {e}")
    i += 1
print(json.dumps(stats), flush=True)
sys.stdin.readline()
reg.close()
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--bound-ms", type=float, default=1000.0)
    ap.add_argument("--library-processes", type=int, default=3)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="peerreg-legacy-")
    os.chmod(base, 0o700)
    path = os.path.join(base, "servers.json")
    start = time.time() + 1.0
    until = start + args.duration
    libs = [subprocess.Popen([sys.executable, "-c", LIBRARY, path, f"lib{i}", str(until)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for i in range(args.library_processes)]
    held = []
    for p in libs:
        held += json.loads(p.stdout.readline())["held"]
    legacy = [subprocess.Popen([sys.executable, "-c", LEGACY, path, str(3100 + i), str(until)],
                               stdout=subprocess.PIPE, text=True) for i in range(3)]
    # Monitor: how long is each held entry absent from the file, at worst?
    absent_since = {}
    absences = []
    while time.time() < until:
        try:
            with open(path) as f:
                doc = json.loads(f.read())
            ids = {s.get("id") for s in doc.get("servers", [])}
        except Exception:
            time.sleep(0.002)
            continue                     # a torn read of a legacy write: the monitor retries too
        now = time.time()
        for h in held:
            if h in ids:
                if h in absent_since:
                    absences.append(now - absent_since.pop(h))
            else:
                absent_since.setdefault(h, now)
        time.sleep(0.002)
    legacy_writes = sum(int(p.communicate()[0].strip() or 0) for p in legacy)
    stats = [json.loads(p.stdout.readline()) for p in libs]
    time.sleep(0.3)                      # anti-entropy settles after the last legacy write
    with open(path) as f:
        final = {s.get("id") for s in json.loads(f.read()).get("servers", [])}
    missing_at_end = [h for h in held if h not in final]
    for h, t in absent_since.items():
        absences.append(time.time() - t)
    for p in libs:
        p.stdin.write("done\n"); p.stdin.flush(); p.wait()
    calls = sum(s["calls"] for s in stats)
    corrupt = sum(s["corrupt"] for s in stats)
    acked = sum(s["acked"] for s in stats)
    absences.sort()
    worst = absences[-1] * 1000 if absences else 0.0
    p99 = absences[int(0.99 * (len(absences) - 1))] * 1000 if absences else 0.0
    print(f"legacy writers: 3 processes, {legacy_writes} unlocked in-place writes in {args.duration:.0f} s")
    print(f"library: {len(libs)} processes, {calls} calls, {corrupt} returned PEERREG_ECORRUPT, "
          f"{acked} acknowledged registrations")
    print(f"held entries ({len(held)}): {len(absences)} times removed by a legacy write and restored; "
          f"absence p99 {p99:.1f} ms, longest {worst:.1f} ms; missing at the end: {len(missing_at_end)}")
    for s in stats:
        for e in s["errors"]:
            print("   other error:", e)
    failed = 0
    failed += corrupt > 0
    failed += bool(missing_at_end)
    failed += worst > args.bound_ms
    failed += legacy_writes == 0
    print(f"legacy: {4 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
