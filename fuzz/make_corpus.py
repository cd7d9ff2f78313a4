#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/): valid registries and
entries of every shape the format allows (legacy, unknown fields, epoch-ms timestamps, every
liveness mode and health state) and one input per kind of malformed input from
tests/torture/cases.py (kept under 12 KiB each, at most two of each generated kind, so the corpus stays small).

Files it writes are named <kind>-<slug>-<hash>; it never deletes anything, so inputs found by
the fuzzer (crash-*, or minimized files added by hand) stay. Run it again after changing
tests/torture/cases.py:  python3 fuzz/make_corpus.py
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "torture"))

import cases as CS  # noqa: E402

MAX = 12 << 10

FORMAT_EXAMPLE = {
    "version": 1, "generation": 42,
    "servers": [{
        "id": "journey-service", "name": "Journey Service", "url": "http://127.0.0.1:8080/mcp", "port": 8080,
        "transport": "http", "pid": 12345, "startedAt": "2026-11-21T09:30:00.000Z",
        "lastSeen": "2026-11-21T09:31:00.000Z", "liveness": "lease", "ttlSeconds": 30,
        "capabilities": {"tools": ["findTrips"], "resources": ["resource://journey/"], "prompts": ["plan-trip"]},
        "health": {"status": "HEALTHY", "message": "ok", "lastCheck": "2026-11-21T09:31:00.000Z"},
        "requiresSession": True, "metadata": {"anything": "the registrant wants"}}],
}


def valid_files():
    yield "format-example", json.dumps(FORMAT_EXAMPLE, indent=2).encode()
    yield "empty-object", b"{}"
    yield "servers-null", b'{"servers":null}'
    yield "empty-registry", b'{\n  "version": 1,\n  "generation": 0,\n  "servers": []\n}\n'
    yield "legacy-only", json.dumps({"servers": [{"port": 8080, "url": "http://127.0.0.1:8080", "pid": 4242,
                                                  "startedAt": 1700000000000}]}).encode()
    yield "legacy-same-port", json.dumps({"servers": [{"port": 80, "url": "http://a", "pid": 1},
                                                      {"url": "http://b:80/", "pid": 2},
                                                      {"id": "port-80-2", "url": "http://c/", "liveness": "none"}]}).encode()
    yield "legacy-url-only", b'{"servers":[{"url":"https://example.com/mcp","startedAt":"2026-01-01T00:00:00Z"}]}'
    yield "unknown-fields", json.dumps({"version": 3, "generation": 9, "x-top": {"a": [1, 2.5e3, None]},
                                        "servers": [{"id": "u", "url": "ws://[::1]:9/", "liveness": "none",
                                                     "x-entry": {"deep": {"er": [True]}},
                                                     "capabilities": {"tools": ["t"], "x-cap": 1},
                                                     "health": {"status": "DOWN", "consecutiveFailures": 3, "x-h": "k"}}]}).encode()
    modes = []
    for i, mode in enumerate(["lease", "pid", "ttl", "none"]):
        e = {"id": f"m-{mode}", "url": f"http://127.0.0.1:{9000 + i}/", "liveness": mode}
        if mode == "pid":
            e.update(pid=1, pidStartTime=123456)
        if mode == "ttl":
            e.update(ttlSeconds=86400, lastSeen="2026-11-21T09:31:00.123+02:00")
        modes.append(e)
    modes.append({"id": "stdio-one", "transport": "stdio", "liveness": "none", "name": "Ünïcødé \u2603 \"q\" \\ \t"})
    yield "every-liveness", json.dumps({"version": 1, "generation": 1, "servers": modes}, ensure_ascii=False).encode()
    yield "metadata-depth-15", ('{"servers":[{"id":"d","url":"http://x/","liveness":"none","metadata":' + CS.nest(13) + "}]}").encode()
    yield "numbers", b'{"version":1,"generation":9223372036854775807,"servers":[],"n":[0,-0,1e308,-1.5E-7,123456789012345678901234567890]}'
    yield "escapes", '{"servers":[],"s":"\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/","k\\u0041":1}'.encode()


def library_file(generation, entries) -> bytes:
    """A file laid out as the library writes it: one compact entry per line."""
    head = '{\n  "version": 1,\n  "generation": %d,\n  "servers": [' % generation
    if not entries:
        return (head + "]\n}\n").encode()
    body = ",\n    ".join(json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in entries)
    return (head + "\n    " + body + "\n  ]\n}\n").encode()


def incremental_pairs():
    """Two versions separated by a line "--": the one read before, then the current one
    (fuzz/targets/Checks.swift, `incremental`): entries with identical bytes are reused."""
    base = [{"id": f"e{i}", "url": f"http://127.0.0.1:{9100 + i}/", "liveness": "none",
             "capabilities": {"tools": [f"t{i}"], "resources": [], "prompts": []}, "health": {"status": "UNKNOWN"}}
            for i in range(4)]
    legacy = {"port": 9200, "url": "http://127.0.0.1:9200", "pid": 1}
    changed = [dict(e) for e in base]
    changed[1] = dict(changed[1], health={"status": "DOWN", "message": "x"})
    pairs = {
        "one-changed": (base, changed),
        "one-added": (base, base + [dict(base[0], id="e9")]),
        "one-removed": (base, base[:2] + base[3:]),
        "swapped": (base, [base[1], base[0]] + base[2:]),
        "duplicated-id": (base, base + [base[0]]),
        "legacy-kept": (base + [legacy], base + [legacy, dict(legacy)]),
        "reversed": (base, base[::-1]),
    }
    for name, (a, b) in pairs.items():
        yield "incremental-" + name, library_file(1, a) + b"\n--\n" + library_file(2, b)
    yield "incremental-truncated", library_file(1, base) + b"\n--\n" + library_file(2, base)[:-20]
    yield "incremental-entry-then-garbage", library_file(1, base) + b"\n--\n" + library_file(2, base).replace(b"}\n  ]", b"}x\n  ]")


def valid_entries():
    rng = random.Random(1)
    yield "format-example-entry", json.dumps(FORMAT_EXAMPLE["servers"][0]).encode()
    yield "minimal", b'{"id":"a","url":"http://127.0.0.1:1/"}'
    yield "stdio", b'{"id":"s","transport":"stdio"}'
    yield "ttl", b'{"id":"t","url":"ws://h:1/","liveness":"ttl","ttlSeconds":5}'
    yield "pid", b'{"id":"p","url":"http://h/","liveness":"pid","pid":1}'
    yield "none-with-health", b'{"id":"n","url":"https://h/","liveness":"none","health":{"status":"DEGRADED","message":"slow","lastCheck":1700000000000}}'
    for i in range(4):
        yield f"generated-{i}", CS.dumps(CS.valid_entry(rng, i))


def filters():
    yield "filter-all", b'{"healthy":true,"status":"HEALTHY","transport":"http","tool":"t","resource":"resource://fz/x","prompt":"p"}'
    yield "filter-empty", b"{}"
    yield "filter-nulls", b'{"tool":null,"healthy":null}'


def slug(label: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()
    return s[:40] or "x"


def write(target: str, kind: str, label: str, data: bytes) -> bool:
    if len(data) > MAX:
        return False
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = f"{kind}-{slug(label)}-{hashlib.sha1(data).hexdigest()[:8]}"
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    return True


# hostile cases that reproduce a bug found by these tests
REGRESSION_LABELS = ["\\u0000 in health.message", "number literal"]

CABI_OP = {CS.REGISTER: 0, CS.LIST: 1, CS.GET: 2, CS.UNREGISTER: 3, CS.RESOLVE: 4, CS.HEALTH_MSG: 5, CS.HEARTBEAT: 6}


def main() -> None:
    counts = {"parser": 0, "entry": 0, "cabi": 0}
    for label, data in valid_files():
        counts["parser"] += write("parser", "valid", label, data)
    for label, data in incremental_pairs():
        counts["parser"] += write("parser", "valid", label, data)
    for label, data in valid_entries():
        counts["entry"] += write("entry", "valid", label, data)
        counts["cabi"] += write("cabi", "valid", "register-" + label, bytes([0]) + data)
        counts["cabi"] += write("cabi", "valid", "register-check-" + label, bytes([7]) + data)
    for label, data in filters():
        counts["entry"] += write("entry", "valid", label, data)
        counts["cabi"] += write("cabi", "valid", "list-" + label, bytes([1]) + data)
    for name in [b"t", b"p", b"fz-live.t", b"fz-live.p", b"resource://fz/x", b"resource://fz/", b"nope.t"]:
        for kind in (1, 2, 3):
            counts["cabi"] += write("cabi", "valid", f"resolve-{kind}-{name.decode()}", bytes([4, kind]) + name)
    counts["cabi"] += write("cabi", "valid", "get-fz-live", b"\x02fz-live")
    counts["cabi"] += write("cabi", "valid", "heartbeat-fz-live", b"\x06fz-live")
    counts["cabi"] += write("cabi", "valid", "health-healthy-msg", b"\x05\x02all good \xe2\x98\x83")
    counts["cabi"] += write("cabi", "valid", "unregister-fz-live", b"\x03fz-live")

    # one of each hand-written hostile case, and a sample of the generated ones
    cases = CS.handwritten() + CS.big_files() + [c for c in CS.generate(3, 300, 200, "/nonexistent")
                                                  if c.label.startswith("generated")]
    seen: dict = {}
    for c in cases:
        if c.data is None or len(c.data) > MAX:
            continue
        key = (c.kind, re.sub(r"\d+", "#", c.label))
        seen[key] = seen.get(key, 0) + 1
        if c.label.startswith("generated") and seen[key] > 2:
            continue
        # reproducers of bugs these tests found (fixed in d959700) are named regress-*
        kind = "regress" if any(k in c.label for k in REGRESSION_LABELS) else "bad"
        if c.kind == CS.FILE:
            counts["parser"] += write("parser", kind, c.label, c.data)
        elif c.kind in (CS.REGISTER, CS.LIST):
            counts["entry"] += write("entry", kind, c.label, c.data)
        if c.kind in CABI_OP:
            param = b""
            if c.kind == CS.RESOLVE:
                param = bytes([c.param % 256])
            elif c.kind == CS.HEALTH_MSG:
                param = bytes([(c.param + 1) % 6 if 0 <= c.param + 1 < 6 else 0])
            counts["cabi"] += write("cabi", "bad", c.label, bytes([CABI_OP[c.kind]]) + param + c.data)
    print("fuzz/make_corpus.py: wrote " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
