#!/usr/bin/env python3
"""`make bench-agent`: the cluster agent's timings on a real 3-member etcd cluster on loopback,
each side by side with its floor measured in the same run (docs/CLUSTER.md):

1. register on A → visible in B's list (the view file B's list reads) and in B's
   `watch --scope cluster`, p50/p99 — against the floor: a raw etcd put on one member → the event
   on a gateway watch of another member (what any etcd-based design pays);
2. register on A → the key in etcd (DESIGN.md's bar: within 100 ms);
3. agent SIGKILL → its entries gone from B (bounded by the lease TTL) — against the anchor,
   Consul's minimum deregister_critical_service_after of 1 minute;
4. etcd fully down and back with 1,000 entries (500 on A, 500 on B) → both views complete and
   fresh again, counted from the moment every member answers /health.

    python3 benchmarks/cluster/run.py --bin PEER_REGISTRY --worker REGISTRY_CROWD_WORKER
Sizes: BENCH_AGENT_ITERATIONS (default 100), BENCH_AGENT_TTL (default 3), BENCH_AGENT_ENTRIES (1000).
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
from cluster import EtcdCluster, Machine, entry, tempdir, wait_until  # noqa: E402


def quantile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p * len(s) + 0.5)) - 1))]


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


class GatewayWatch:
    """A raw etcd v3 gateway watch on a prefix: the floor's observer."""

    def __init__(self, endpoint: str, prefix: str):
        host, port = endpoint.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        end = bytearray(prefix.encode())
        end[-1] += 1
        body = json.dumps({"create_request": {"key": base64.b64encode(prefix.encode()).decode(),
                                              "range_end": base64.b64encode(bytes(end)).decode()}})
        self.conn.request("POST", "/v3/watch", body=body, headers={"content-type": "application/json"})
        self.resp = self.conn.getresponse()
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                now = time.monotonic()
                msg = json.loads(line)
                for ev in msg.get("result", {}).get("events", []) or []:
                    key = base64.b64decode(ev["kv"]["key"]).decode()
                    with self.cond:
                        self.seen.setdefault(key + ("#del" if ev.get("type") == "DELETE" else ""), now)
                        self.cond.notify_all()
        except Exception:
            return

    def wait(self, key: str, timeout: float = 10) -> float:
        with self.cond:
            ok = self.cond.wait_for(lambda: key in self.seen, timeout)
            if not ok:
                raise AssertionError(f"gateway watch: {key} not seen")
            return self.seen[key]


class CLIWatch:
    """`peer-registry watch --json --scope cluster` on a machine; records when each id arrives."""

    def __init__(self, cli: str, machine: Machine):
        self.p = subprocess.Popen([cli, "watch", "--json", "--scope", "cluster", "--registry", machine.registry],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            now = time.monotonic()
            ev = json.loads(line)
            with self.cond:
                for e in ev["added"]:
                    self.seen.setdefault(f"{e.get('node')}/{e['id']}", now)
                self.cond.notify_all()

    def wait(self, key: str, timeout: float = 10) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.seen, timeout):
                raise AssertionError(f"cli watch: {key} not seen")
            return self.seen[key]

    def stop(self):
        self.p.kill()
        self.p.wait()


def view_has(machine: Machine, needle: str) -> bool:
    try:
        with open(machine.view, "rb") as f:
            return needle.encode() in f.read()
    except OSError:
        return False


def wait_view(machine: Machine, needle: str, present: bool = True, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if view_has(machine, needle) == present:
            return time.monotonic()
        time.sleep(0.0005)
    raise AssertionError(f"{machine.name}'s view: {needle} {'never appeared' if present else 'never left'}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--worker", required=True)
    ap.add_argument("--doc", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = ap.parse_args()
    n = int(os.environ.get("BENCH_AGENT_ITERATIONS", "100"))
    ttl = int(os.environ.get("BENCH_AGENT_TTL", "3"))
    total = int(os.environ.get("BENCH_AGENT_ENTRIES", "1000"))
    root = tempdir()
    etcd = EtcdCluster(root)
    etcd.start_all()
    A = Machine(root, "A", args.bin, args.worker, etcd, advertise="127.0.0.2", lease_ttl=ttl)
    B = Machine(root, "B", args.bin, args.worker, etcd, advertise="127.0.0.3", lease_ttl=ttl)
    results: dict[str, object] = {}
    try:
        A.start_agent()
        B.start_agent()

        # 1 + 2: propagation, side by side with the floor, interleaved.
        floor_watch = GatewayWatch(etcd.endpoints[1], "/bench-floor/")
        prefix_watch = GatewayWatch(etcd.endpoints[1], "/peer-registry/v1/A/")
        cli_watch = CLIWatch(args.bin, B)
        time.sleep(0.5)
        floor, to_etcd, to_list, to_watch = [], [], [], []
        for i in range(n):
            key = f"/bench-floor/k{i}"
            t0 = time.monotonic()
            etcd.request(etcd.endpoints[0], "/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                                                           "value": base64.b64encode(b"{}").decode()})
            floor.append(floor_watch.wait(key) - t0)
            id = f"p{i}"
            A.register_static(entry(id, f"http://10.0.0.1:{10000 + i}/mcp"))
            t0 = time.monotonic()  # the registration is in A's servers.json once the CLI returns
            to_list.append(wait_view(B, f'"id":"{id}"') - t0)
            to_etcd.append(max(0.0, prefix_watch.wait(f"/peer-registry/v1/A/{id}") - t0))
            to_watch.append(cli_watch.wait(f"A/{id}") - t0)
        cli_watch.stop()
        for i in range(n):
            A.unregister(f"p{i}")
        wait_until(lambda: not B.remote_keys(), 30, "B's view empty")
        results["propagation"] = {
            "n": n,
            "floor_etcd_put_to_watch": [quantile(floor, .5), quantile(floor, .99)],
            "register_to_etcd": [quantile(to_etcd, .5), quantile(to_etcd, .99)],
            "register_to_B_list": [quantile(to_list, .5), quantile(to_list, .99)],
            "register_to_B_watch": [quantile(to_watch, .5), quantile(to_watch, .99)],
        }

        # 3: agent death → gone elsewhere.
        deaths = []
        for i in range(3):
            A.register_static(entry(f"d{i}", f"http://10.0.0.1:{11000 + i}/mcp"))
            wait_view(B, f'"id":"d{i}"')
            t0 = time.monotonic()
            A.kill_agent()
            deaths.append(wait_view(B, f'"id":"d{i}"', present=False, timeout=ttl + 30) - t0)
            A.unregister(f"d{i}")
            A.start_agent()
        results["death"] = {"ttl": ttl, "seconds": deaths}

        # 4: resync after a full outage at `total` entries.
        half = total // 2
        holders = [A.hold([entry(f"a{i}", f"http://10.0.1.{i % 250 + 1}:{12000 + i}/mcp", tools=[f"t{i}"]) for i in range(half)]),
                   B.hold([entry(f"b{i}", f"http://10.0.2.{i % 250 + 1}:{12000 + i}/mcp", tools=[f"t{i}"]) for i in range(total - half)])]
        wait_until(lambda: len(B.remote_keys()) == half and len(A.remote_keys()) == total - half, 120, "1,000 entries converged", 0.2)
        resyncs = []
        for _ in range(2):
            etcd.kill_all()
            wait_until(lambda: A.view_state() == "unreachable" and B.view_state() == "unreachable", 60, "views stale", 0.1)
            for name in etcd.names:
                etcd.start(name)
            etcd.wait_healthy()
            t0 = time.monotonic()

            def fresh():
                for m, want in ((A, total - half), (B, half)):
                    if m.view_state() != "connected":
                        return False
                    with open(m.view) as f:
                        v = json.load(f)
                    if len(v["servers"]) != want:
                        return False
                return True
            wait_until(fresh, 120, "both views fresh and complete", 0.005)
            resyncs.append(time.monotonic() - t0)
        for h in holders:
            h.kill()
            h.wait()
        results["resync"] = {"entries": total, "seconds": resyncs}
    finally:
        A.stop()
        B.stop()
        etcd.stop()
        shutil.rmtree(root, ignore_errors=True)

    p = results["propagation"]
    f50, f99 = p["floor_etcd_put_to_watch"]
    section = f"""## Cluster agent (make bench-agent)

Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine (shared with other work:
wall-clock figures are noisy; compare the ratios, measured side by side in the same run), etcd
{subprocess.run(['etcd', '--version'], capture_output=True, text=True).stdout.split()[2]}, 3 members on loopback, peer-registry binary
`{os.path.relpath(args.bin, ROOT)}`. Two "machines" are registry directories with an agent each (docs/CLUSTER.md says
what differs on real machines). {n} registrations, interleaved with the floor.

| path | p50 | p99 | p50 vs floor |
|---|---|---|---|
| floor: raw etcd put on member 1 → event on a gateway watch of member 2 | {ms(f50)} | {ms(f99)} | 1.0x |
| register on A → key in etcd (bar: 100 ms) | {ms(p['register_to_etcd'][0])} | {ms(p['register_to_etcd'][1])} | {p['register_to_etcd'][0] / f50:.1f}x |
| register on A → in B's list (the view B's `list --scope cluster` reads) | {ms(p['register_to_B_list'][0])} | {ms(p['register_to_B_list'][1])} | {p['register_to_B_list'][0] / f50:.1f}x |
| register on A → event on B's `watch --scope cluster` | {ms(p['register_to_B_watch'][0])} | {ms(p['register_to_B_watch'][1])} | {p['register_to_B_watch'][0] / f50:.1f}x |

| failure | measured | anchor |
|---|---|---|
| A's agent SIGKILLed → its entry gone from B's view (lease TTL {ttl} s) | {', '.join(f'{s:.2f} s' for s in results['death']['seconds'])} | Consul deregisters a critical service after at least 60 s: {60 / max(results['death']['seconds']):.0f}x later |
| etcd fully down, then back: every member healthy → {total} entries complete and fresh on both views | {', '.join(f'{s:.2f} s' for s in results['resync']['seconds'])} | |

The death time is what was left of the lease when the agent died — between TTL − TTL/3 and
TTL, since the agent refreshes it every TTL/3 — plus etcd's expiry sweep (every 500 ms), the
watch and the view write; a shorter `--lease-ttl` shortens it at the cost of more keepalives.
"register → key in etcd" is counted from the moment `peer-registry register` returned (the
entry durable in A's servers.json); the agent usually has the key in etcd by then, which is why
its p50 is below the floor's. The machine's load average was {os.getloadavg()[0]:.1f} at the end
of the run (2 cores): the p99s are dominated by scheduling delays.

"""
    print(section)
    print(json.dumps(results, indent=1))
    begin, end = "<!-- bench-agent:begin -->", "<!-- bench-agent:end -->"
    doc = Path(args.doc)
    text = doc.read_text() if doc.exists() else ""
    block = f"{begin}\n{section}{end}\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    doc.write_text(text)
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "bench-agent.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
