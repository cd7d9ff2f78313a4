#!/usr/bin/env python3
"""The gateway's benchmark (make bench-gateway), all in one run on one machine, against fast
native backends (benchmarks/supervise/echo_mcp.c, bridged to HTTP by the gateway's own
--config supervisor) so the gateway itself is what is measured:

Two gateways run side by side, each with a registry and backends of its own: one reaches its
supervised servers in process (the default), one through their HTTP bridges
(--supervised-over-http, the path of every self-registered HTTP server).

- tools/call latency p50/p99 through each gateway vs directly to the same backend (its bridge);
- calls/s with 50 concurrent downstream sessions spread over 4 backends, each gateway vs direct;
- time from a registration (and an unregistration) to notifications/tools/list_changed at a
  client (p50/p99);
- memory per idle downstream session (the gateway's RSS before and after opening them).

Writes build/bench-gateway/results.json and the "Gateway" section of docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "build" / "bench-gateway"
BACKENDS = ["e1", "e2", "e3", "e4"]

spec = importlib.util.spec_from_file_location("bench_supervise", ROOT / "benchmarks" / "supervise" / "run.py")
assert spec and spec.loader
sup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sup)

sys.path.insert(0, str(ROOT / "bindings" / "python" / "src"))


def client_json(client: Path, tool: str, *args: str) -> dict:
    out = subprocess.run([str(client), *args], check=True, capture_output=True, text=True,
                         env={**os.environ, "BENCH_TOOL": tool}).stdout
    return json.loads(out.strip().splitlines()[-1])


def load(client: Path, targets: list[tuple[str, str, str]], sessions: int, seconds: float) -> dict:
    """`sessions` sessions split over `targets` (url, auth, tool), one client process each,
    at the same time; the sum of their messages/s."""
    per = [sessions // len(targets) + (1 if i < sessions % len(targets) else 0) for i in range(len(targets))]
    procs = [subprocess.Popen([str(client), "load", url, auth, str(n), str(seconds)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "BENCH_TOOL": tool})
             for (url, auth, tool), n in zip(targets, per)]
    total, failures = 0.0, 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        r = json.loads(out.strip().splitlines()[-1])
        total += r["calls_per_s"]
        failures += r["failures"]
    return {"calls_per_s": total, "failures": failures}


class Session:
    """A raw streamable HTTP session with the gateway (initialize, then its GET stream)."""

    def __init__(self, url: str, token: str) -> None:
        m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
        assert m
        self.host, self.port, self.path = m.group(1), int(m.group(2)), m.group(3)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                        "Accept": "application/json, text/event-stream"}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.request("POST", self.path, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}), self.headers)
        r = conn.getresponse()
        r.read()
        self.headers["Mcp-Session-Id"] = r.headers["Mcp-Session-Id"]
        conn.request("POST", self.path, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), self.headers)
        conn.getresponse().read()
        conn.close()

    def listen(self, on_event) -> threading.Thread:
        def run() -> None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            conn.request("GET", self.path, headers={**self.headers, "Accept": "text/event-stream"})
            r = conn.getresponse()
            while True:
                line = r.fp.readline()
                if not line:
                    return
                if line.startswith(b"data:") and b"list_changed" in line:
                    on_event(time.perf_counter(), line)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="peer-registry (a release build for real figures)")
    ap.add_argument("--calls", type=int, default=int(os.environ.get("BENCH_CALLS", "3000")))
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "5")))
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--registrations", type=int, default=40)
    ap.add_argument("--idle-sessions", type=int, default=1000)
    ap.add_argument("--doc", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = ap.parse_args()
    os.environ.setdefault("PEER_REGISTRY_LIB", str(ROOT / "build" / "lib" / "libpeerregistry.so"))
    import peer_registry

    echo, client = sup.compile_tools()
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict = {"calls": args.calls, "seconds": args.seconds, "sessions": args.sessions,
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start, "
                                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
                     "build": "release" if "/release/" in args.bin else "debug"}
    gateways = {}
    try:
        # Two gateways on registries of their own, each supervising four echo_mcp backends: one
        # reaches them in process (the default), one through their HTTP bridges
        # (--supervised-over-http), the path every self-registered HTTP server takes.
        for mode, extra in (("inproc", []), ("http", ["--supervised-over-http"])):
            gateways[mode] = start_gateway(args.bin, echo, extra)
        a, b = gateways["inproc"], gateways["http"]
        registry, url, token, entries = a["registry"], a["url"], a["token"], a["entries"]
        auth = f"Bearer {token}"
        direct = {i: (entries[i]["url"], entries[i]["headers"]["Authorization"]) for i in BACKENDS}

        # Memory per idle downstream session.
        time.sleep(0.5)
        before = rss_kib(a["proc"].pid)
        idle = [Session(url, token) for _ in range(args.idle_sessions)]
        time.sleep(0.5)
        after = rss_kib(a["proc"].pid)
        results["idle_sessions"] = len(idle)
        results["rss_before_kib"] = before
        results["rss_after_kib"] = after
        # Latency: direct, through each gateway, direct again (side by side in this run).
        b_auth = f"Bearer {b['token']}"
        results["direct"] = client_json(client, "echo", "http", direct["e1"][0], direct["e1"][1], str(args.calls))
        results["gateway"] = client_json(client, "e1__echo", "http", url, auth, str(args.calls))
        results["gateway_http"] = client_json(client, "e1__echo", "http", b["url"], b_auth, str(args.calls))
        results["direct_again"] = client_json(client, "echo", "http", direct["e1"][0], direct["e1"][1], str(args.calls))
        # Throughput: 50 sessions over the 4 backends.
        results["load_direct"] = load(client, [(direct[i][0], direct[i][1], "echo") for i in BACKENDS], args.sessions, args.seconds)
        results["load_gateway"] = load(client, [(url, auth, f"{i}__echo") for i in BACKENDS], args.sessions, args.seconds)
        results["load_gateway_http"] = load(client, [(b["url"], b_auth, f"{i}__echo") for i in BACKENDS], args.sessions, args.seconds)
        results["load_direct_again"] = load(client, [(direct[i][0], direct[i][1], "echo") for i in BACKENDS], args.sessions, args.seconds)

        # Registration -> list_changed at a client.
        events: list[tuple[float, bytes]] = []
        got = threading.Event()

        def on_event(t: float, line: bytes) -> None:
            if b"tools/list_changed" in line:
                events.append((t, line))
                got.set()
        listener = Session(url, token)
        listener.listen(on_event)
        time.sleep(0.5)
        reg = peer_registry.Registry(registry)
        add_ms: list[float] = []
        remove_ms: list[float] = []
        e1 = entries["e1"]
        for k in range(args.registrations):
            for phase in ("add", "remove"):
                got.clear()
                n = len(events)
                start = time.perf_counter()
                if phase == "add":
                    reg.register({"id": f"late{k}", "url": e1["url"], "transport": "http", "headers": e1["headers"],
                                  "tools": ["echo"]})
                else:
                    reg.unregister(f"late{k}")
                while len(events) == n:
                    if not got.wait(10):
                        raise SystemExit(f"no tools/list_changed within 10 s after {phase} {k}")
                    got.clear()
                (add_ms if phase == "add" else remove_ms).append((events[n][0] - start) * 1000)
                time.sleep(0.02)
        reg.close()
        results["list_changed_register_ms"] = add_ms
        results["list_changed_unregister_ms"] = remove_ms

    finally:
        for g in gateways.values():
            stop_gateway(g)

    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    section = render(results)
    print(section)
    update_doc(Path(args.doc), section)


def start_gateway(binary: str, echo: Path, extra: list[str]) -> dict:
    """A gateway on a registry of its own, supervising the four echo backends; returns once it
    lists all four."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    os.chmod(tmp, 0o700)
    registry = str(tmp / "servers.json")
    config = tmp / "servers-config.json"
    config.write_text(json.dumps({"mcpServers": {
        i: {"command": str(echo), "shared": True, "eager": True, "maxSessions": 4096} for i in BACKENDS}}))
    log = open(tmp / "gateway.log", "w")
    proc = subprocess.Popen([binary, "gateway", "--config", str(config), "--http", "0", "--registry", registry,
                             "--log-level", "warning", *extra], stdout=subprocess.PIPE, stderr=log, text=True)
    g = {"proc": proc, "tmp": tmp, "log": log, "registry": registry}
    assert proc.stdout is not None
    g["url"] = url = proc.stdout.readline().strip()
    g["token"] = token = (Path(registry).parent / "runtime" / "token").read_text().strip()
    g["entries"] = sup.wait_entries(registry, BACKENDS)
    s = Session(url, token)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(s.host, s.port, timeout=30)
        conn.request("POST", s.path, json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}), s.headers)
        names = {t["name"] for t in json.loads(conn.getresponse().read())["result"]["tools"]}
        conn.close()
        if {f"{i}__echo" for i in BACKENDS} <= names:
            break
        time.sleep(0.1)
    return g


def stop_gateway(g: dict) -> None:
    g["proc"].send_signal(signal.SIGTERM)
    try:
        g["proc"].wait(timeout=30)
    except subprocess.TimeoutExpired:
        g["proc"].kill()
        g["proc"].wait()
    g["log"].close()
    shutil.rmtree(g["tmp"], ignore_errors=True)


def render(r: dict) -> str:
    def ms(us: float) -> str:
        return f"{us / 1000:.2f} ms"
    d, g, gh, d2 = r["direct"], r["gateway"], r["gateway_http"], r["direct_again"]
    ld, lg, lh, ld2 = r["load_direct"], r["load_gateway"], r["load_gateway_http"], r["load_direct_again"]
    base50 = min(d["p50_us"], d2["p50_us"])
    base99 = min(d["p99_us"], d2["p99_us"])
    base_load = max(ld["calls_per_s"], ld2["calls_per_s"])
    add, rem = r["list_changed_register_ms"], r["list_changed_unregister_ms"]
    per_session = (r["rss_after_kib"] - r["rss_before_kib"]) / max(1, r["idle_sessions"])

    def added(x: dict) -> str:
        return f"{ms(x['p50_us'] - base50)} (x{x['p50_us'] / base50:.2f}) | {ms(x['p99_us'] - base99)} (x{x['p99_us'] / base99:.2f})"

    def rate(x: dict) -> str:
        return (f"{x['calls_per_s']:.0f} | {2 * x['calls_per_s']:.0f} | {x['failures']} | x{x['calls_per_s'] / max(1, base_load):.2f} of direct; "
                f"x{2 * x['calls_per_s'] / 1000:.1f} seed 002's 1000 msg/s")
    lines = [
        "## Gateway (make bench-gateway)",
        "",
        f"One run, {r['build']} build, {r['machine']}. Backends: four `echo_mcp.c` processes, shared,",
        "supervised by the gateway's own `--config`; client: `bench_client.c` (raw HTTP/1.1",
        "keep-alive). Direct = the same client to a backend's bridge URL. Two gateways run side by",
        "side, each with its own registry and backends: one reaches its supervised servers in",
        "process (the default), one with `--supervised-over-http` through their bridges, which is",
        "the path of every self-registered streamable HTTP server.",
        "",
        "| tools/call, sequential | p50 | p99 | mean |",
        "|---|---|---|---|",
        f"| direct to the backend | {ms(d['p50_us'])} | {ms(d['p99_us'])} | {ms(d['mean_us'])} |",
        f"| through the gateway, in process | {ms(g['p50_us'])} | {ms(g['p99_us'])} | {ms(g['mean_us'])} |",
        f"| through the gateway, over HTTP | {ms(gh['p50_us'])} | {ms(gh['p99_us'])} | {ms(gh['mean_us'])} |",
        f"| direct again (after) | {ms(d2['p50_us'])} | {ms(d2['p99_us'])} | {ms(d2['mean_us'])} |",
        "",
        "| added by the gateway | p50 | p99 |",
        "|---|---|---|",
        f"| **in process** | **{added(g).split(' | ')[0]}** | {added(g).split(' | ')[1]} |",
        f"| over HTTP | {added(gh)} |",
        "",
        f"| {r['sessions']} concurrent sessions over 4 backends, {r['seconds']:g} s | calls/s | messages/s (request + answer) | failed | ratios |",
        "|---|---|---|---|---|",
        f"| direct to the backends | {rate(ld)} |",
        f"| **through the gateway, in process** | {rate(lg)} |",
        f"| through the gateway, over HTTP | {rate(lh)} |",
        f"| direct again (after) | {rate(ld2)} |",
        "",
        f"| registry change → `tools/list_changed` at a client ({len(add)} each) | p50 | p99 | max |",
        "|---|---|---|---|",
        f"| register (gateway connects: initialize + lists, then notifies) | {percentile(add, 50):.1f} ms | {percentile(add, 99):.1f} ms | {max(add):.1f} ms |",
        f"| unregister | {percentile(rem, 50):.1f} ms | {percentile(rem, 99):.1f} ms | {max(rem):.1f} ms |",
        "",
        f"Memory per idle downstream session, measured first on the fresh gateway (initialized, GET stream not open, no upstream session yet):",
        f"{per_session:.1f} KiB ({r['idle_sessions']} sessions: RSS {r['rss_before_kib']} → {r['rss_after_kib']} KiB).",
        "",
    ]
    return "\n".join(lines)


def update_doc(path: Path, section: str) -> None:
    begin, end = "<!-- bench-gateway:begin -->", "<!-- bench-gateway:end -->"
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{section}{end}\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


if __name__ == "__main__":
    main()
