"""Hostile inputs for every entry point of the C ABI, each with the codes it may be refused
with. Used by tests/torture/run.py (through `helper hostile`) and by fuzz/make_corpus.py
(a sample becomes the fuzz seed corpus).

Every case here must be *refused*: a case that a correct library would accept does not belong
here (it would write, and the torture test checks that nothing is ever written).
"""

from __future__ import annotations

import json
import random
import struct
from typing import Iterable, List, Optional, Tuple

from abi import EINVAL, ELIMIT, ENOTFOUND, ECORRUPT, EPERM

# entry points (helper.c "hostile" case kinds)
REGISTER, LIST, GET, UNREGISTER, RESOLVE, HEALTH_MSG, HEARTBEAT, FILE, OPEN, REGISTER_NULL, HEALTH_ID = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
KIND_NAMES = {REGISTER: "register", LIST: "list filter", GET: "get id", UNREGISTER: "unregister id", RESOLVE: "resolve name",
              HEALTH_MSG: "set_health message/status", HEARTBEAT: "heartbeat id", FILE: "registry file",
              OPEN: "open path", REGISTER_NULL: "register NULL", HEALTH_ID: "set_health id"}

NULL = None


class Case:
    __slots__ = ("kind", "param", "codes", "data", "label")

    def __init__(self, kind: int, data: Optional[bytes], codes: Iterable[int], label: str, param: int = 0):
        self.kind = kind
        self.data = data
        self.codes = frozenset(codes)
        self.label = label
        self.param = param

    def mask(self) -> int:
        m = 0
        for c in self.codes:
            m |= 1 << (-c)
        return m

    def record(self) -> bytes:
        if self.data is None:
            return struct.pack("<BiII", self.kind, self.param, self.mask(), 0xFFFFFFFF)
        return struct.pack("<BiII", self.kind, self.param, self.mask(), len(self.data)) + self.data


def b(s) -> bytes:
    return s if isinstance(s, bytes) else s.encode("utf-8")


def dumps(v) -> bytes:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


BIG_STR = "x" * 4097
BIG_CAP = "t" * 513
LONG_NUMBER = "1" * 65


def valid_entry(rng: random.Random, i: int = 0) -> dict:
    port = rng.randint(1024, 65000)
    e = {
        "id": f"svc-{i}-{rng.randint(0, 1 << 30)}",
        "name": rng.choice(["Journey", "Ünïcødé ☃", "name with \"quotes\" and \\", "tab\there", "日本語"]),
        "url": f"http://127.0.0.1:{port}/mcp",
        "port": port,
        "transport": "http",
        "liveness": rng.choice(["none", "ttl", "lease"]),
        "capabilities": {"tools": [f"tool{j}" for j in range(rng.randint(0, 3))],
                         "resources": ["resource://x/"], "prompts": ["p"]},
        "health": {"status": rng.choice(["HEALTHY", "DEGRADED", "DOWN", "UNKNOWN"]), "message": "ok"},
        "metadata": {"team": "x", "n": [1, 2.5, -3e2, None, True], "nested": {"a": {"b": "c"}}},
        "x-future": {"kept": True},
    }
    if e["liveness"] == "ttl":
        e["ttlSeconds"] = rng.randint(1, 86400)
    return e


def valid_file(rng: random.Random, n: int = 3) -> dict:
    servers = []
    for i in range(n):
        e = valid_entry(rng, i)
        e["startedAt"] = "2026-11-21T09:30:00.000Z"
        e["lastSeen"] = "2026-11-21T09:31:00.000Z"
        e["liveness"] = "none"
        servers.append(e)
    servers.append({"port": 9001, "url": "http://127.0.0.1:9001", "pid": 1, "startedAt": 1700000000000})
    return {"version": 1, "generation": 7, "x-top": {"future": [1, 2]}, "servers": servers}


def nest(depth: int, leaf="x") -> str:
    return "[" * depth + json.dumps(leaf) + "]" * depth


# ---- hand-written cases -----------------------------------------------------------------------

TRAVERSAL_IDS = ["../../etc/passwd", "..", ".", "/", "a/b", "/etc/passwd", "a\\b", "..%2f..%2fetc", "x.lease",
                 "leases/../x", "~root", "a\nb", "$(id)", "`id`", "a;b", "a b", "", "-x", "_x", "x" * 65,
                 "é", "Ω", "\u202e", "a\u0000b", "\ud7ff", "x" * 200, "lpt1/", "a\tb"]

WRONG_TYPES = {
    "id": [1, None, True, [], {}, 1.5],
    "name": [1, True, [], {}],
    "url": [1, True, [], {}, "no scheme", "http://a b/", ":x", "", "http://x/\u007f", "ht tp://x"],
    "port": ["80", -1, 65536, 1.5, 1e3, True, [], 99999999999999999999, "1e400"],
    "transport": ["HTTP", "tcp", 1, [], ""],
    "pid": [0, -1, 2147483648, "1", 1.5, True],
    "pidStartTime": [-1, 1.5, "1", 18446744073709551616, True],
    "startedAt": ["yesterday", "2026-13-01T00:00:00Z", "2026-11-21T09:30:00", -1, 1e20, True, [], "2026-11-21T25:00:00Z"],
    "lastSeen": ["now", 253402300800000, {}, "2026-02-30T00:00:00Zjunk"],
    "liveness": ["LEASE", "forever", 1, [], ""],
    "ttlSeconds": [0, 86401, -5, "30", 1.5, 1e400 if False else "1e400"],
    "capabilities": [[], "tools", 1, True],
    "requiresSession": ["true", 1, [], {}],
    "health": ["HEALTHY", 1, [], True],
}

CAP_BAD = [
    {"tools": "t"}, {"tools": [1]}, {"tools": [""]}, {"tools": [None]}, {"tools": [["t"]]}, {"resources": {}},
    {"prompts": [True]}, {"tools": ["a\u0000b"]},
]
HEALTH_BAD = [
    {"status": "healthy"}, {"status": "OK"}, {"status": 1}, {"message": 1}, {"lastCheck": "never"},
    {"lastCheck": -1}, {"consecutiveFailures": -1}, {"consecutiveFailures": 1000001}, {"consecutiveFailures": "1"},
]

INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
                b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xbf", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"]
LONE_SURROGATES = ["\\ud800", "\\udfff", "\\ud800\\u0041", "\\ud800\\ud800", "\\udc00\\ud800", "\\ud83d", "\\ude00x"]
BAD_ESCAPES = ["\\x41", "\\u12", "\\u12G4", "\\", "\\a", "\\U0001F600", "\\'"]


def base_entry() -> dict:
    return {"id": "hostile", "url": "http://127.0.0.1:1/mcp", "liveness": "none"}


def entry_with(**fields) -> bytes:
    e = base_entry()
    e.update(fields)
    return dumps(e)


def with_raw_field(key: str, raw: bytes) -> bytes:
    """The base entry with `key` set to the raw JSON text `raw` (for escapes json.dumps won't make)."""
    return b'{"id":"hostile","url":"http://127.0.0.1:1/mcp","liveness":"none","' + b(key) + b'":' + raw + b"}"


def handwritten() -> List[Case]:
    C: List[Case] = []
    add = C.append

    # register: malformed JSON
    for text in [b"", b" ", b"{", b"}", b"[", b"{\"id\":", b"{\"id\":\"a\"", b"{\"id\" \"a\"}", b"{id:\"a\"}",
                 b"{'id':'a'}", b"{\"id\":\"a\",}", b"{,}", b"[1,]", b"{\"a\":01}", b"{\"a\":1.}", b"{\"a\":.5}",
                 b"{\"a\":+1}", b"{\"a\":-}", b"{\"a\":1e}", b"{\"a\":NaN}", b"{\"a\":Infinity}", b"{\"a\":tru}",
                 b"{\"a\":nul}", b"{\"a\":\"\t\"}", b"{\"a\":\"\x01\"}", b"\xef\xbb\xbf{}", b"{} {}", b"{}x",
                 b"{\"a\":1}//c", b"/*c*/{}", b"\"x\"", b"1", b"null", b"true", b"[]", b"[{}]", b"{\"a\":\"x}",
                 b"{\"a\":[1,2}", b"{\"a\":{\"b\":1]}"]:
        add(Case(REGISTER, text, [EINVAL], f"malformed json {text[:20]!r}"))
    # register: ids (path traversal and friends)
    for i in TRAVERSAL_IDS:
        add(Case(REGISTER, entry_with(id=i), [EINVAL], f"id {i[:20]!r}"))
    add(Case(REGISTER, dumps({"url": "http://127.0.0.1:1/"}), [EINVAL], "id missing"))
    # register: every known field with a wrong type or an out-of-range value
    for key, values in WRONG_TYPES.items():
        for v in values:
            data = with_raw_field(key, b(v)) if key == "ttlSeconds" and v == "1e400" else entry_with(**{key: v})
            add(Case(REGISTER, data, [EINVAL], f"{key}={str(v)[:20]}"))
    for raw in [b"1e400", b"-1e400", b"99999999999999999999999999", b"-0.0", b"1E2", b"0.5e1", b"-9223372036854775809"]:
        add(Case(REGISTER, with_raw_field("port", raw), [EINVAL], f"port {raw!r}"))
        add(Case(REGISTER, with_raw_field("pid", raw), [EINVAL], f"pid {raw!r}"))
    for c in CAP_BAD:
        add(Case(REGISTER, entry_with(capabilities=c), [EINVAL], f"capabilities {c}"))
    for h in HEALTH_BAD:
        add(Case(REGISTER, entry_with(health=h), [EINVAL], f"health {h}"))
    # NUL characters where the library validates strings
    for key in ["id", "name", "url"]:
        add(Case(REGISTER, entry_with(**{key: "a\u0000b" if key != "url" else "http://a\u0000b/"}), [EINVAL], f"\\u0000 in {key}"))
    add(Case(REGISTER, entry_with(capabilities={"resources": ["resource://a\u0000/"]}), [EINVAL], "\\u0000 in a resource"))
    add(Case(REGISTER, entry_with(health={"status": "DOWN", "message": "bad\u0000news"}), [EINVAL], "\\u0000 in health.message"))
    # raw NUL: C cuts the string there
    full = entry_with(name="abc")
    for p in [0, 1, len(full) // 2, len(full) - 1]:
        add(Case(REGISTER, full[:p] + b"\x00" + full[p:], [EINVAL], f"raw NUL at {p}"))
    # invalid UTF-8, raw, inside and outside strings
    for bad in INVALID_UTF8:
        add(Case(REGISTER, b'{"id":"hostile","url":"http://127.0.0.1:1/","liveness":"none","name":"' + bad + b'"}', [EINVAL], f"invalid utf8 {bad!r} in name"))
        add(Case(REGISTER, b'{"id":"h' + bad + b'","url":"http://127.0.0.1:1/","liveness":"none"}', [EINVAL], f"invalid utf8 {bad!r} in id"))
        add(Case(REGISTER, bad + b'{"id":"hostile","url":"http://127.0.0.1:1/"}', [EINVAL], f"invalid utf8 {bad!r} before"))
    # lone surrogates and bad escapes
    for s in LONE_SURROGATES + BAD_ESCAPES:
        for key in ["name", "metadata", "x-extra"]:
            add(Case(REGISTER, with_raw_field(key, b'"' + b(s) + b'"'), [EINVAL], f"escape {s} in {key}"))
        add(Case(REGISTER, b'{"id":"a' + b(s) + b'","url":"http://127.0.0.1:1/"}', [EINVAL], f"escape {s} in id"))
    # duplicate keys
    for dup in [b'{"id":"a","id":"b","url":"http://127.0.0.1:1/"}',
                b'{"id":"a","url":"http://127.0.0.1:1/","url":"http://127.0.0.1:2/"}',
                b'{"id":"a","url":"http://127.0.0.1:1/","capabilities":{"tools":[],"tools":["x"]}}',
                b'{"id":"a","url":"http://127.0.0.1:1/","health":{"status":"DOWN","status":"HEALTHY"}}',
                b'{"id":"a","url":"http://127.0.0.1:1/","metadata":{"k":1,"k":2}}',
                b'{"id":"a","url":"http://127.0.0.1:1/","metadata":{"k":{"x":1,"x":1}}}',
                b'{"id":"a","url":"http://127.0.0.1:1/","x":1,"x":1}',
                b'{"id":"a","url":"http://127.0.0.1:1/","metadata":{"\\u0041":1,"A":2}}']:
        add(Case(REGISTER, dup, [EINVAL], f"duplicate key {dup[:40]!r}"))
    # oversized
    for key in ["name", "url"]:
        add(Case(REGISTER, entry_with(**{key: BIG_STR if key != "url" else "http://x/" + BIG_STR}), [ELIMIT], f"{key} 4097+ bytes"))
    add(Case(REGISTER, entry_with(metadata={"k": BIG_STR}), [ELIMIT], "metadata string 4097 bytes"))
    add(Case(REGISTER, entry_with(metadata={BIG_STR: 1}), [ELIMIT], "metadata key 4097 bytes"))
    add(Case(REGISTER, entry_with(**{"x-extra": [BIG_STR]}), [ELIMIT], "unknown field string 4097 bytes"))
    add(Case(REGISTER, entry_with(health={"status": "DOWN", "message": BIG_STR}), [ELIMIT], "health.message 4097 bytes"))
    add(Case(REGISTER, entry_with(capabilities={"tools": [BIG_CAP]}), [ELIMIT], "capability name 513 bytes"))
    add(Case(REGISTER, entry_with(capabilities={"resources": ["r://" + BIG_CAP]}), [ELIMIT], "resource 517 bytes"))
    add(Case(REGISTER, entry_with(capabilities={"tools": [f"t{i}" for i in range(1025)]}), [ELIMIT], "1025 tools"))
    add(Case(REGISTER, entry_with(metadata={f"k{i}": "v" * 4000 for i in range(20)}), [ELIMIT], "entry over 64 KiB"))
    add(Case(REGISTER, entry_with(metadata="m" * (8 << 20)), [ELIMIT], "entry JSON over 8 MiB"))
    add(Case(REGISTER, b"[" * ((8 << 20) + 1), [ELIMIT], "8 MiB + 1 of ["))
    add(Case(REGISTER, entry_with(startedAt="2" * 5000), [EINVAL, ELIMIT], "startedAt 5000 bytes"))
    # nesting
    for depth in [16, 17, 100, 10000, 1 << 20]:
        add(Case(REGISTER, with_raw_field("metadata", b(nest(depth))), [ELIMIT], f"metadata nested {depth}"))
    add(Case(REGISTER, b"{\"a\":" * 5000 + b"1" + b"}" * 5000, [ELIMIT], "objects nested 5000"))
    # number literals over the 64-character limit
    add(Case(REGISTER, with_raw_field("metadata", b(LONG_NUMBER)), [ELIMIT], "number literal 65 characters"))
    add(Case(REGISTER, with_raw_field("x-n", b("-" + "9" * 70 + ".5e-10")), [ELIMIT], "number literal 77 characters"))
    # semantic refusals
    add(Case(REGISTER, dumps({"id": "nourl", "liveness": "none"}), [EINVAL], "url missing"))
    add(Case(REGISTER, dumps({"id": "p", "url": "http://x/", "liveness": "pid"}), [EINVAL], "pid liveness without pid"))
    add(Case(REGISTER, dumps({"id": "p", "url": "http://x/", "liveness": "pid", "pid": 2147483000}), [EINVAL], "pid liveness, no such process"))
    add(Case(REGISTER_NULL, None, [EINVAL], "register(NULL)"))

    # list filters
    for text in [b"", b"[]", b"\"x\"", b"1", b"null", b"{", b"{\"tool\":}", b"{\"bogus\":1}", b"{\"healthy\":\"yes\"}",
                 b"{\"healthy\":1}", b"{\"status\":\"FINE\"}", b"{\"status\":1}", b"{\"transport\":\"tcp\"}",
                 b"{\"transport\":[]}", b"{\"tool\":1}", b"{\"resource\":{}}", b"{\"prompt\":true}",
                 b"{\"tool\":\"a\",\"tool\":\"b\"}", b"{\"../../etc\":1}", b"{\"tool\":\"\\ud800\"}", b"{}x",
                 b"{\"tool\":\"a\x01\"}", b"\xef\xbb\xbf{}"]:
        add(Case(LIST, text, [EINVAL], f"filter {text[:30]!r}"))
    for bad in INVALID_UTF8:
        add(Case(LIST, b'{"tool":"' + bad + b'"}', [EINVAL], f"filter invalid utf8 {bad!r}"))
    add(Case(LIST, b'{"tool":"' + b"t" * 70000 + b'"}', [ELIMIT], "filter over 64 KiB"))
    add(Case(LIST, b'{"tool":' + b(nest(17)) + b"}", [ELIMIT, EINVAL], "filter nested 18"))
    add(Case(LIST, b"[" * 100000, [ELIMIT], "filter nested 100000"))

    # ids: get, unregister, heartbeat, set_health
    for i in TRAVERSAL_IDS + ["nope", "baseline-not", "BASELINE"]:
        if "\u0000" in i:
            continue
        for kind in (GET, UNREGISTER, HEARTBEAT):
            add(Case(kind, b(i), [ENOTFOUND, EINVAL], f"{KIND_NAMES[kind]} {i[:20]!r}"))
        add(Case(HEALTH_ID, b(i), [ENOTFOUND, EINVAL], f"set_health id {i[:20]!r}", param=1))
    for kind in (GET, UNREGISTER, HEARTBEAT, HEALTH_ID):
        add(Case(kind, b"x" * 4097, [ELIMIT], f"{KIND_NAMES[kind]} 4097 bytes", param=1))
        add(Case(kind, b"x" * ((8 << 20) + 10), [ELIMIT], f"{KIND_NAMES[kind]} 8 MiB", param=1))
        add(Case(kind, None, [EINVAL], f"{KIND_NAMES[kind]} NULL", param=1))
        for bad in INVALID_UTF8:
            add(Case(kind, b"base" + bad, [EINVAL], f"{KIND_NAMES[kind]} invalid utf8 {bad!r}", param=1))

    # resolve names
    for kind in [0, 4, -1, 1000, -2147483648, 2147483647]:
        add(Case(RESOLVE, b"t", [EINVAL], f"resolve kind {kind}", param=kind))
    for kind in (1, 2, 3):
        add(Case(RESOLVE, b"", [EINVAL], f"resolve kind {kind} empty name", param=kind))
        add(Case(RESOLVE, None, [EINVAL], f"resolve kind {kind} NULL", param=kind))
        add(Case(RESOLVE, b"n" * 4097, [ELIMIT], f"resolve kind {kind} 4097 bytes", param=kind))
        for name in ["../../etc/passwd", "a.b.c", ".", "..", "baseline.", ".t", "baseline..t", "resource://",
                     "resource://b", "\u2028", "n" * 4096, "baseline.nope", "🙂"]:
            add(Case(RESOLVE, b(name), [ENOTFOUND], f"resolve kind {kind} {name[:20]!r}", param=kind))
        for bad in INVALID_UTF8:
            add(Case(RESOLVE, b"t" + bad, [EINVAL], f"resolve invalid utf8 {bad!r}", param=kind))

    # set_health: statuses and messages (on the live "baseline" entry)
    for status in [-1, 4, 99, -2147483648, 2147483647]:
        add(Case(HEALTH_MSG, b"ok", [EINVAL], f"health status {status}", param=status))
    add(Case(HEALTH_MSG, b"m" * 4097, [ELIMIT], "health message 4097 bytes", param=1))
    add(Case(HEALTH_MSG, b"m" * ((8 << 20) + 1), [ELIMIT], "health message 8 MiB + 1", param=1))
    for bad in INVALID_UTF8:
        add(Case(HEALTH_MSG, b"msg " + bad, [EINVAL], f"health message invalid utf8 {bad!r}", param=1))
    return C


def open_cases(scratch: str) -> List[Case]:
    """Paths for peerreg_open, under `scratch` (created by the caller)."""
    C = []
    C.append(Case(OPEN, b"", [EINVAL], "open empty path"))
    C.append(Case(OPEN, b(scratch + "/"), [EINVAL], "open path ending in /"))
    C.append(Case(OPEN, b(scratch + "/x/."), [EINVAL], "open path ending in /."))
    C.append(Case(OPEN, b(scratch + "/x/.."), [EINVAL], "open path ending in /.."))
    C.append(Case(OPEN, b(scratch + "/" + "d" * 5000), [ELIMIT], "open path 5000 bytes"))
    C.append(Case(OPEN, b(scratch) + b"/\xff/servers.json", [EINVAL], "open path invalid utf8"))
    C.append(Case(OPEN, b(scratch + "/isdir"), [EPERM], "open a directory as the file"))
    C.append(Case(OPEN, b(scratch + "/fifo/servers.json"), [EPERM], "open where servers.json is a FIFO"))
    return C


# ---- generated cases: one guaranteed-fatal mutation of a valid entry or file ------------------

def _mutate_entry(rng: random.Random, e: dict) -> Tuple[bytes, List[int], str]:
    text = dumps(e)
    m = rng.randrange(10)
    if m == 0:
        p = rng.randrange(len(text))  # any strict prefix of an object is invalid JSON
        return text[:p], [EINVAL], "truncated"
    if m == 1:
        p = rng.randrange(len(text) + 1)
        return text[:p] + rng.choice(INVALID_UTF8) + text[p:], [EINVAL], "invalid utf8 inserted"
    if m == 2:
        p = rng.randrange(len(text) + 1)
        return text[:p] + bytes([rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 0x0b, 0x0c, 0x0e, 0x1f])]) + text[p:], [EINVAL], "control byte inserted"
    if m == 3:
        k = rng.choice(list(e))
        return text[:-1] + b"," + dumps(k) + b":" + dumps(e[k]) + b"}", [EINVAL], f"duplicate key {k}"
    if m == 4:
        e = dict(e)
        e["id"] = rng.choice(TRAVERSAL_IDS) + rng.choice(["", "/x", "..", ".lease"])
        if "\u0000" not in e["id"] and len(e["id"].encode()) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in e["id"]) and e["id"][:1].isalnum():
            e["id"] += "/"
        return dumps(e), [EINVAL], "invalid id"
    if m == 5:
        e = dict(e)
        d = rng.choice([17, 18, 50, 1000, 20000])
        return text[:-1] + b',"deep":' + b(nest(d)) + b"}", [ELIMIT], f"nested {d}"
    if m == 6:
        key = rng.choice(list(WRONG_TYPES))
        v = rng.choice(WRONG_TYPES[key])
        e = dict(e)
        if key == "ttlSeconds" and v == "1e400":
            return text[:-1] + b',"ttlSeconds":1e400}' if "ttlSeconds" not in e else dumps({**e, "ttlSeconds": 0}), [EINVAL], "ttl 1e400"
        e[key] = v
        return dumps(e), [EINVAL], f"wrong {key}"
    if m == 7:
        where = rng.choice(["name", "url", "meta", "extra", "msg", "cap", "many"])
        e = dict(e)
        if where == "name":
            e["name"] = "n" * rng.randint(4097, 9000)
        elif where == "url":
            e["url"] = "http://h/" + "u" * rng.randint(4097, 9000)
        elif where == "meta":
            e["metadata"] = {"a": [{"b": "m" * rng.randint(4097, 9000)}]}
        elif where == "extra":
            e["x-" + str(rng.randint(0, 99))] = "e" * rng.randint(4097, 9000)
        elif where == "msg":
            e["health"] = {"status": "DOWN", "message": "h" * rng.randint(4097, 9000)}
        elif where == "cap":
            e["capabilities"] = {"tools": ["t" * rng.randint(513, 2000)]}
        else:
            e["capabilities"] = {"prompts": [f"p{i}" for i in range(rng.randint(1025, 1500))]}
        return dumps(e), [ELIMIT], f"oversized {where}"
    if m == 8:
        key = rng.choice(["name", "x-s", "metadata"])
        s = rng.choice(LONE_SURROGATES + BAD_ESCAPES)
        return text[:-1] + b',"' + b(key) + b'x":"' + b(s) + b'"}', [EINVAL], f"bad escape {s}"
    p = rng.randrange(len(text))
    return text[:p] + b"\x00" + text[p:], [EINVAL], "raw NUL"


def _mutate_file(rng: random.Random, doc: dict) -> Tuple[bytes, List[int], str]:
    text = json.dumps(doc, indent=rng.choice([None, 2])).encode() + b"\n"
    last = text.rindex(b"}")
    m = rng.randrange(11)
    if m == 0:
        return text[:rng.randrange(last)], [ECORRUPT], "truncated"
    if m == 1:
        # inside a string value: find a quote
        quotes = [i for i in range(len(text)) if text[i:i + 1] == b'"']
        p = rng.choice(quotes) + 1
        return text[:p] + rng.choice(INVALID_UTF8) + text[p:], [ECORRUPT], "invalid utf8 in a string"
    if m == 2:
        p = rng.randrange(last)
        return text[:p] + bytes([rng.choice([0, 1, 2, 7, 8, 0x1f])]) + text[p:], [ECORRUPT], "control byte / NUL"
    if m == 3:
        s = json.dumps(doc["servers"][0])
        k = rng.choice(list(doc["servers"][0]))
        dup = s[:-1] + ", " + json.dumps(k) + ": " + json.dumps(doc["servers"][0][k]) + "}"
        d2 = json.dumps({**doc, "servers": ["@@"]}).replace('"@@"', dup)
        return d2.encode(), [ECORRUPT], "duplicate key in an entry"
    if m == 4:
        d = json.loads(json.dumps(doc))
        d["servers"][0]["id"] = rng.choice([i for i in TRAVERSAL_IDS if "\u0000" not in i])
        return json.dumps(d).encode(), [ECORRUPT], "invalid id"
    if m == 5:
        d = json.loads(json.dumps(doc))
        d["servers"].append(dict(d["servers"][0]))
        return json.dumps(d).encode(), [ECORRUPT], "duplicate id"
    if m == 6:
        s = json.dumps(doc)
        depth = rng.choice([16, 17, 200, 100000])
        return s.replace('"x-top": {', '"x-deep": ' + nest(depth) + ', "x-top": {', 1).encode(), [ECORRUPT], f"nested {depth}"
    if m == 7:
        key, val = rng.choice([("version", 0), ("version", -1), ("version", "1"), ("version", 1.5), ("generation", -1),
                               ("generation", "7"), ("generation", 1e400 if False else None), ("servers", {}),
                               ("servers", "x"), ("servers", 1)])
        d = dict(doc)
        if val is None:
            return json.dumps(d).replace('"generation": 7', '"generation": 1e400').encode(), [ECORRUPT], "generation 1e400"
        d[key] = val
        return json.dumps(d).encode(), [ECORRUPT], f"{key}={val!r}"
    if m == 8:
        d = json.loads(json.dumps(doc))
        key = rng.choice(list(WRONG_TYPES))
        v = rng.choice(WRONG_TYPES[key])
        if key == "id" and v is None:
            v = 1
        if key == "ttlSeconds" and v == "1e400":
            v = 0
        if key == "url" and v == "":
            v = "no scheme"
        d["servers"][0][key] = v
        return json.dumps(d).encode(), [ECORRUPT], f"wrong {key}"
    if m == 9:
        s = json.dumps(doc)
        s = s.replace('"x-top": {', '"x-s": "' + rng.choice(LONE_SURROGATES + BAD_ESCAPES) + '", "x-top": {', 1)
        return s.encode(), [ECORRUPT], "bad escape"
    return rng.choice([b"", b"\xef\xbb\xbf" + text, text + b"x", text + text, b"[]", b"null", b"\"servers\"", b"{}{}"]), [ECORRUPT], "not one object"


def big_files() -> List[Case]:
    C = []
    e = {"id": "e", "url": "http://127.0.0.1:1/", "liveness": "none"}
    many = {"version": 1, "generation": 1, "servers": [dict(e, id=f"e{i}") for i in range(4097)]}
    C.append(Case(FILE, json.dumps(many).encode(), [ELIMIT], "file with 4097 entries"))
    C.append(Case(FILE, b'{"servers":[],"pad":"' + b"p" * (8 << 20) + b'"}', [ELIMIT], "file over 8 MiB"))
    C.append(Case(FILE, json.dumps({"servers": [dict(e, name="n" * 4097)]}).encode(), [ELIMIT], "entry string 4097 bytes"))
    C.append(Case(FILE, json.dumps({"servers": [dict(e, capabilities={"tools": [f"t{i}" for i in range(1025)]})]}).encode(), [ELIMIT], "1025 tools in the file"))
    C.append(Case(FILE, json.dumps({"servers": [{"url": "stdio:x"}]}).encode(), [ECORRUPT], "legacy entry without a port"))
    C.append(Case(FILE, json.dumps({"servers": [dict(e, id="../../etc/passwd")]}).encode(), [ECORRUPT], "path traversal id in the file"))
    C.append(Case(FILE, json.dumps({"servers": [dict(e, health={"status": "DOWN", "message": "a\u0000b"})]}).encode(), [ECORRUPT], "\\u0000 in health.message in the file"))
    C.append(Case(FILE, b'{"servers":[],"n":' + b(LONG_NUMBER) + b"}", [ECORRUPT, ELIMIT], "number literal 65 characters in the file"))
    return C


def generate(seed: int, n_entries: int, n_files: int, scratch: str) -> List[Case]:
    rng = random.Random(seed)
    cases = handwritten() + open_cases(scratch) + big_files()
    for i in range(n_entries):
        data, codes, label = _mutate_entry(rng, valid_entry(rng, i))
        cases.append(Case(REGISTER, data, codes, "generated entry: " + label))
    for i in range(n_files):
        data, codes, label = _mutate_file(rng, valid_file(rng, rng.randint(1, 4)))
        cases.append(Case(FILE, data, codes, "generated file: " + label))
    return cases


def write_case_file(cases: List[Case], path: str) -> None:
    with open(path, "wb") as f:
        for c in cases:
            f.write(c.record())
