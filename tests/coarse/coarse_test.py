#!/usr/bin/env python3
"""Writers, readers and watches on a filesystem with 1-second mtimes (issue 11).

Run by tests/coarse/run.sh on a loop-mounted `mkfs.ext4 -I 128` image, where a temp+rename cycle
reuses the same two inode numbers and several writes land within one mtime second, so a
(device, inode, size, mtime) stamp alone cannot tell versions apart. Each scenario counts what
it checks and what went wrong; the figures are printed, and any lost write, stale read or missed
watch event fails the run.

    coarse_test.py DIR         (DIR on the coarse filesystem)
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import peer_registry as pr

ROUNDS_HB = 400
ROUNDS_RU = 300

CHILD = r"""
import json, os, sys, time
import peer_registry as pr
mode, path, name = sys.argv[1], sys.argv[2], sys.argv[3]
reg = pr.Registry(path)
out = {"acked": 0, "errors": []}
if mode == "heartbeat":
    reg.register({"id": name, "url": "http://127.0.0.1:9/", "liveness": "ttl", "ttlSeconds": 600})
    out["acked"] += 1
    print("ready", flush=True); sys.stdin.readline()
    for _ in range(int(sys.argv[4])):
        reg.heartbeat(name)
        out["acked"] += 1
elif mode == "rounds":
    print("ready", flush=True); sys.stdin.readline()
    prev = None
    for r in range(int(sys.argv[4])):
        cur = f"{name}-{r}"
        reg.register({"id": cur, "url": f"http://127.0.0.1:{1000 + r}/"})
        out["acked"] += 1
        if prev is not None:
            try:
                reg.unregister(prev)
                out["acked"] += 1
            except pr.RegistryError as e:
                out["errors"].append(f"unregister {prev}: {e}")
        prev = cur
    out["last"] = prev
    print(json.dumps(out), flush=True)
    sys.stdin.readline()          # hold the last lease until told
    reg.close()
    sys.exit(0)
elif mode == "health":
    reg.register({"id": name, "url": "http://127.0.0.1:9/", "liveness": "none"})
    print("ready", flush=True)
    for line in sys.stdin:
        reg.set_health(name, "HEALTHY", line.strip())
        print("ok", flush=True)
    sys.exit(0)
print(json.dumps(out), flush=True)
reg.close()
"""


def spawn(*args):
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def fresh(base, name):
    d = tempfile.mkdtemp(prefix=name + "-", dir=base)
    return os.path.join(d, "servers.json")


def heartbeats(base):
    path = fresh(base, "hb")
    procs = [spawn("heartbeat", path, f"hb{i}", str(ROUNDS_HB)) for i in range(4)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n"); p.stdin.flush()
    acked = sum(json.loads(p.communicate()[0].strip().splitlines()[-1])["acked"] for p in procs)
    gen = json.load(open(path))["generation"]
    lost = acked - gen
    print(f"heartbeats: 4 processes x {ROUNDS_HB}: {acked} acknowledged writes, final generation {gen}, lost {lost}")
    return 0 if lost == 0 else 1


def rounds(base):
    path = fresh(base, "ru")
    procs = [spawn("rounds", path, f"p{i}", str(ROUNDS_RU)) for i in range(4)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n"); p.stdin.flush()
    results = [json.loads(p.stdout.readline()) for p in procs]
    errors = [e for r in results for e in r["errors"]]
    with pr.Registry(path) as reg:
        ids = sorted(e["id"] for e in reg.list())
    expected = sorted(r["last"] for r in results)
    resurrected = [i for i in ids if i not in expected]
    missing = [i for i in expected if i not in ids]
    for p in procs:
        p.stdin.write("done\n"); p.stdin.flush(); p.wait()
    print(f"register/unregister: 4 processes x {ROUNDS_RU}: {len(errors)} unregisters of a just-acknowledged entry failed, "
          f"{len(resurrected)} unregistered entries came back, {len(missing)} acknowledged entries missing")
    for e in errors[:5]:
        print("   ", e)
    return 0 if not errors and not resurrected and not missing else 1


def stale_reads(base):
    path = fresh(base, "rd")
    w = spawn("health", path, "h")
    assert w.stdout.readline().strip() == "ready"
    stale = 0
    with pr.Registry(path) as reg:
        reg.get("h")
        for i in range(20):
            for msg in ("msg-A", "msg-B"):          # twice, same length, within one mtime second
                w.stdin.write(msg + "\n"); w.stdin.flush()
                assert w.stdout.readline().strip() == "ok"
            if reg.get("h").get("health", {}).get("message") != "msg-B":
                stale += 1
            w.stdin.write("msg-C\n"); w.stdin.flush(); w.stdout.readline()
            reg.get("h")
    w.stdin.close(); w.wait()
    print(f"reads: {stale} of 20 gets answered an old health message")
    return 0 if stale == 0 else 1


def watches(base):
    path = fresh(base, "wa")
    w = spawn("health", path, "h")
    assert w.stdout.readline().strip() == "ready"
    missed = 0
    with pr.Registry(path) as reg:
        watch = reg.watch()
        for i in range(20):
            final = f"final-{i:02d}"
            for msg in (f"first-{i:02d}", final):
                w.stdin.write(msg + "\n"); w.stdin.flush()
                assert w.stdout.readline().strip() == "ok"
            deadline = time.monotonic() + 3
            seen = None
            while time.monotonic() < deadline:
                ev = watch.next(timeout=max(0.01, deadline - time.monotonic()))
                if ev is None:
                    break
                for e in ev["changed"] + ev["added"]:
                    if e["id"] == "h":
                        seen = e.get("health", {}).get("message")
                if seen == final:
                    break
            if seen != final:
                missed += 1
        watch.close()
    w.stdin.close(); w.wait()
    print(f"watch: {missed} of 20 final states not delivered")
    return 0 if missed == 0 else 1


def main():
    base = sys.argv[1]
    failures = sum(f(base) for f in (heartbeats, rounds, stale_reads, watches))
    print(f"coarse: {4 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
