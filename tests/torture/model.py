"""A model of the registry file (docs/FORMAT.md) for the torture tests: given the file before
a change and the change, the file the library must write — so a crashed or killed writer's
leftovers can be compared with "the state before" and "the state after" by parsed content.

Values the writer sets to "now" (lastSeen, health.lastCheck of the changed entry) cannot be
predicted to the millisecond: the model puts NOW there, which matches any valid ISO 8601
timestamp taken during the test run.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import re
import time
from typing import Any, Dict, List, Optional, Tuple

from abi import EEXISTS, ENOTFOUND, OK


class _Now:
    """Wildcard for a timestamp the writer set to the current time."""

    def __repr__(self) -> str:
        return "NOW"

    def __copy__(self) -> "_Now":
        return self

    def __deepcopy__(self, memo) -> "_Now":
        return self


NOW = _Now()
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
KNOWN = {"id", "name", "url", "port", "transport", "pid", "pidStartTime", "startedAt", "lastSeen", "liveness",
         "ttlSeconds", "capabilities", "health", "requiresSession", "metadata"}


def strict_loads(text) -> Any:
    """json.loads that refuses duplicate keys (as the library does)."""

    def pairs(items):
        d = {}
        for k, v in items:
            if k in d:
                raise ValueError(f"duplicate key {k!r}")
            d[k] = v
        return d

    return json.loads(text, object_pairs_hook=pairs)


def read_doc(path: str) -> Optional[dict]:
    """The parsed file, or None when it does not exist. Raises when it does not parse."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return strict_loads(data.decode("utf-8"))


def empty_doc() -> dict:
    return {"version": 1, "generation": 0, "servers": []}


def iso_from_millis(ms: int) -> str:
    t = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso_ms(s: str) -> Optional[int]:
    if not isinstance(s, str) or not ISO.match(s):
        return None
    t = _dt.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    return int(t.timestamp()) * 1000 + int(s[20:23])


def proc_start_time(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return proc_start_time(pid) is not None
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def is_legacy(e: dict) -> bool:
    return "id" not in e


def entry_id(e: dict) -> str:
    return e.get("id") or e.get("_derived_id", "")


class World:
    """Who holds which lease right now: id -> pid of the live holder."""

    def __init__(self) -> None:
        self.leases: Dict[str, int] = {}

    def held(self, id_: str) -> bool:
        pid = self.leases.get(id_)
        return pid is not None and pid_exists(pid)

    def died(self, pid: int) -> None:
        for k in [k for k, v in self.leases.items() if v == pid]:
            del self.leases[k]


def liveness_of(e: dict) -> str:
    if "liveness" in e and e["liveness"] is not None:
        return e["liveness"]
    return "pid" if e.get("pid") is not None else "none"


def alive(e: dict, world: World, own: set, now_ms: int) -> bool:
    mode = liveness_of(e)
    if mode == "none":
        return True
    if mode == "ttl":
        seen = e.get("lastSeen") or e.get("startedAt")
        if seen is NOW:
            return True
        if isinstance(seen, int):
            seen_ms = seen
        else:
            seen_ms = parse_iso_ms(seen) if seen else None
            if seen_ms is None and isinstance(seen, str):
                seen_ms = _parse_iso_loose(seen)
        if seen_ms is None:
            return False
        return now_ms - seen_ms < int(e.get("ttlSeconds") or 30) * 1000
    if mode == "pid":
        pid = e.get("pid")
        if not pid:
            return False
        st = proc_start_time(pid)
        if st is None:
            return False
        return e.get("pidStartTime") is None or e["pidStartTime"] == st
    # lease
    id_ = e.get("id")
    return id_ in own or world.held(id_)


def _parse_iso_loose(s: str) -> Optional[int]:
    m = re.match(r"^(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)$", s)
    if not m:
        return None
    t = _dt.datetime.strptime(m.group(1) + "T" + m.group(2), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    ms = int((m.group(3) or "0")[:3].ljust(3, "0"))
    off = 0
    if m.group(4) not in ("Z", "z"):
        sign = 1 if m.group(4)[0] == "+" else -1
        off = sign * (int(m.group(4)[1:3]) * 3600 + int(m.group(4)[4:6]) * 60)
    return int(t.timestamp() - off) * 1000 + ms


def canonical(e: dict) -> dict:
    """An entry as the library writes it back (ServerEntry.jsonObject)."""
    e = copy.deepcopy(e)
    for k in list(e):
        if k in KNOWN and e[k] is None:
            del e[k]
    for k in ("startedAt", "lastSeen"):
        if isinstance(e.get(k), int):
            e[k] = iso_from_millis(e[k])
    if is_legacy(e):
        e.pop("liveness", None)
        caps = e.get("capabilities")
        if caps is not None:
            c = _canonical_caps(caps)
            if c == {"tools": [], "resources": [], "prompts": []}:
                del e["capabilities"]
            else:
                e["capabilities"] = c
        h = e.get("health")
        if h is not None:
            hc = _canonical_health(h)
            if hc == {"status": "UNKNOWN"}:
                del e["health"]
            else:
                e["health"] = hc
        return e
    e["liveness"] = liveness_of(e)
    e["capabilities"] = _canonical_caps(e.get("capabilities") or {})
    e["health"] = _canonical_health(e.get("health") or {})
    return e


def _canonical_caps(c: dict) -> dict:
    out = {k: v for k, v in c.items()}
    for k in ("tools", "resources", "prompts"):
        out[k] = list(c.get(k) or [])
    return out


def _canonical_health(h: dict) -> dict:
    out = {k: v for k, v in h.items() if v is not None or k not in ("status", "message", "lastCheck", "consecutiveFailures")}
    out.setdefault("status", "UNKNOWN")
    if isinstance(out.get("lastCheck"), int):
        out["lastCheck"] = iso_from_millis(out["lastCheck"])
    return out


class Op:
    """One change, as the helper's op file line and as a model function."""

    def __init__(self, kind: str, arg: Any = None, status: int = 0, message: Optional[str] = None):
        self.kind = kind
        self.arg = arg
        self.status = status
        self.message = message

    def line(self) -> str:
        if self.kind == "register":
            return "register\t" + json.dumps(self.arg, separators=(",", ":"))
        if self.kind == "health":
            return f"health\t{self.arg}\t{self.status}" + (f"\t{self.message}" if self.message is not None else "")
        if self.kind == "prune":
            return "prune"
        return f"{self.kind}\t{self.arg}"

    def __repr__(self) -> str:
        return self.line()[:160]


HEALTH_NAMES = ["UNKNOWN", "HEALTHY", "DEGRADED", "DOWN"]


def stored_entry(e: dict, writer_pid: int) -> dict:
    """What register stores for input e (prepareForRegistration)."""
    s = copy.deepcopy(e)
    s["lastSeen"] = NOW
    url = s.get("url")
    mode = s.get("liveness", "lease")
    s["liveness"] = mode
    if url:
        scheme = url.split(":", 1)[0].lower()
        if "transport" not in s:
            t = {"http": "http", "https": "http", "ws": "ws", "wss": "ws", "stdio": "stdio"}.get(scheme)
            if t:
                s["transport"] = t
        if "port" not in s:
            m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*)", url)
            if m:
                hp = m.group(1).split("@")[-1]
                pm = re.search(r":(\d+)$", hp)
                if pm and 1 <= int(pm.group(1)) <= 65535:
                    s["port"] = int(pm.group(1))
                elif scheme in ("http", "ws"):
                    s["port"] = 80
                elif scheme in ("https", "wss"):
                    s["port"] = 443
    if mode == "lease":
        s.setdefault("pid", writer_pid)
        s.pop("pidStartTime", None)
    elif mode == "pid":
        s["pidStartTime"] = proc_start_time(s["pid"])
    elif mode == "ttl":
        s.setdefault("ttlSeconds", 30)
    h = s.get("health") or {}
    if (h.get("status", "UNKNOWN") != "UNKNOWN" or h.get("message") is not None) and h.get("lastCheck") is None:
        h = dict(h)
        h["lastCheck"] = NOW
        s["health"] = h
    if "startedAt" not in s:
        s["startedAt"] = NOW
    return canonical(s)


def apply(doc: Optional[dict], op: Op, world: World, own: set, writer_pid: int,
          now_ms: Optional[int] = None) -> Tuple[int, Optional[dict], set]:
    """(expected rc, the file after — None when nothing is written —, own leases after)."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    before = copy.deepcopy(doc) if doc is not None else empty_doc()
    servers: List[dict] = before.get("servers") or []
    own = set(own)
    changed = False
    ids = [entry_id(e) if not is_legacy(e) else None for e in servers]

    def find(id_: str) -> Optional[int]:
        for i, e in enumerate(servers):
            if e.get("id") == id_:
                return i
        return None

    if op.kind == "register":
        e = op.arg
        id_ = e["id"]
        holds = id_ in own
        i = find(id_)
        stored = stored_entry(e, writer_pid)
        if i is not None:
            ex = servers[i]
            if liveness_of(ex) == "lease" and not holds and alive(ex, world, own, now_ms):
                return EEXISTS, None, own
            if holds and liveness_of(ex) == "lease" and "startedAt" not in e:
                stored["startedAt"] = ex.get("startedAt")
            servers[i] = stored
        else:
            servers.append(stored)
        mode = stored["liveness"]
        if mode == "lease" and not holds:
            if world.held(id_):
                return EEXISTS, None, own
            own.add(id_)
        elif mode != "lease" and holds:
            own.discard(id_)
        changed = True
    elif op.kind == "unregister":
        i = find(op.arg)
        if i is None:
            return ENOTFOUND, None, own
        del servers[i]
        own.discard(op.arg)
        changed = True
    elif op.kind in ("health", "heartbeat"):
        i = find(op.arg)
        if i is None or not alive(servers[i], world, own, now_ms):
            return ENOTFOUND, None, own
        e = canonical(servers[i])
        if op.kind == "heartbeat":
            e["lastSeen"] = NOW
        else:
            h = dict(e.get("health") or {})
            h["status"] = HEALTH_NAMES[op.status]
            if op.message is None:
                h.pop("message", None)
            else:
                h["message"] = op.message
            h["lastCheck"] = NOW
            h.pop("consecutiveFailures", None)
            e["health"] = h
        servers[i] = e
        changed = True
    elif op.kind == "prune":
        pass
    else:
        raise ValueError(op.kind)

    kept = [e for e in servers if _alive_any(e, world, own, now_ms)]
    removed = len(servers) - len(kept)
    if not changed and removed == 0:
        return OK, None, own
    after = {k: v for k, v in before.items() if k not in ("servers",)}
    after["version"] = before.get("version", 1)
    after["generation"] = before.get("generation", 0) + 1
    after["servers"] = [canonical(e) for e in kept]
    return OK, after, own


def _alive_any(e: dict, world: World, own: set, now_ms: int) -> bool:
    if is_legacy(e):
        pid = e.get("pid")
        return bool(pid) and pid_exists(pid)
    return alive(e, world, own, now_ms)


def matches(actual: Any, expected: Any, path: str = "$") -> Optional[str]:
    """None when actual matches expected (NOW matches any ISO timestamp); else where not."""
    if expected is NOW:
        if isinstance(actual, str) and ISO.match(actual):
            return None
        return f"{path}: expected a fresh timestamp, got {actual!r}"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {type(actual).__name__}"
        ek, ak = set(expected), set(actual)
        if ek != ak:
            return f"{path}: keys differ: missing {sorted(ek - ak)}, unexpected {sorted(ak - ek)}"
        for k in expected:
            why = matches(actual[k], expected[k], f"{path}.{k}")
            if why:
                return why
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            got = [entry_id(x) if isinstance(x, dict) else x for x in actual] if isinstance(actual, list) else actual
            want = [entry_id(x) if isinstance(x, dict) else x for x in expected]
            return f"{path}: expected {len(expected)} items {want}, got {got}"
        for i, (a, b) in enumerate(zip(actual, expected)):
            why = matches(a, b, f"{path}[{i}]")
            if why:
                return why
        return None
    if actual != expected or type(actual) is not type(expected):
        return f"{path}: expected {expected!r}, got {actual!r}"
    return None


def resolve_now(expected: dict, actual: dict) -> dict:
    """expected with NOW replaced by what the file actually holds (after `matches` passed)."""
    if expected is NOW:
        return actual
    if isinstance(expected, dict):
        return {k: resolve_now(v, actual[k]) for k, v in expected.items()}
    if isinstance(expected, list):
        return [resolve_now(a, b) for a, b in zip(expected, actual)]
    return expected
