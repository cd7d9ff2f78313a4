"""Group commit (docs/FORMAT.md, "Group commit"): under contention, one durable write carries the
changes of the processes waiting for the lock — and nothing is acknowledged before it is durable,
lost, or made twice. Real processes throughout; durable writes are counted with inotify (each
is one rename onto servers.json)."""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import json
import os
import struct
import time
from pathlib import Path
from typing import List

import peer_registry
from peer_registry import Registry

from _support import child_env, reap, spawn_python

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_NONBLOCK = 0o4000


class RenameCounter:
    """Counts renames onto the registry file: its durable writes. (IN_MOVED_FROM too: the
    kernel merges an unread event into an identical one before it, cookie aside, so a queue of
    IN_MOVED_TO alone would count one.)"""

    def __init__(self, path: Path) -> None:
        self.name = path.name.encode()
        self.fd = _libc.inotify_init1(IN_NONBLOCK)
        assert self.fd >= 0
        assert _libc.inotify_add_watch(self.fd, str(path.parent).encode(), IN_MOVED_FROM | IN_MOVED_TO) >= 0
        self.count = 0

    def drain(self) -> int:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.count
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0")
                if name == self.name and mask & IN_MOVED_TO:
                    self.count += 1
                offset += 16 + length

    def close(self) -> None:
        os.close(self.fd)


# A writer: opens the registry, waits for "go", then makes `rounds` rounds of register (lease),
# heartbeat, unregister of its own id, and of unregister of an id nobody has (which must say
# ENOTFOUND, whoever made it). Prints one JSON line of what it saw.
WRITER = """
import json, sys, peer_registry
path, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
reg = peer_registry.Registry(path)
print("ready", flush=True)
sys.stdin.readline()
acked = missing = 0
for i in range(rounds):
    sid = f"{name}-{i}"
    stored = reg.register({"id": sid, "url": f"http://127.0.0.1:{20000 + i}/mcp", "metadata": {"by": name}})
    assert stored["id"] == sid and stored["metadata"] == {"by": name}, stored
    assert reg.get(sid)["url"] == f"http://127.0.0.1:{20000 + i}/mcp"
    reg.heartbeat(sid)
    reg.unregister(sid)
    acked += 3
    try:
        reg.unregister(f"{name}-never")
    except peer_registry.NotFoundError:
        missing += 1
    try:
        reg.get(sid)
        raise AssertionError(sid + " still there after its unregister")
    except peer_registry.NotFoundError:
        pass
# One entry kept, to be found in the file afterwards.
reg.register({"id": name + "-kept", "url": "http://127.0.0.1:1/mcp"})
acked += 1
print(json.dumps({"acked": acked, "missing": missing}), flush=True)
sys.stdin.readline()
reg.close()
"""


def _crowd(registry_path: Path, writers: int, rounds: int, env_extra=None):
    """Runs `writers` WRITER processes at once; returns (their reports, renames, processes)."""
    env = child_env(env_extra)
    procs = [spawn_python(WRITER, str(registry_path), f"w{k}", str(rounds), env=env) for k in range(writers)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    counter = RenameCounter(registry_path)
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    reports = []
    for p in procs:
        line = p.stdout.readline()
        assert line, p.stderr.read()
        reports.append(json.loads(line))
    renames = counter.drain()
    counter.close()
    return reports, renames, procs


def _finish(procs) -> None:
    for p in procs:
        p.stdin.close()
        p.wait(timeout=30)
        err = p.stderr.read()
        reap(p)
        assert p.returncode == 0, err


def test_waiting_writers_share_durable_writes(reg: Registry, registry_path: Path) -> None:
    reg.register({"id": "base", "url": "http://127.0.0.1:2/mcp", "liveness": "none"})
    start_gen = json.loads(registry_path.read_text())["generation"]
    reports, renames, procs = _crowd(registry_path, writers=8, rounds=25)
    try:
        acked = sum(r["acked"] for r in reports)
        changes = acked  # the unregisters of missing ids change nothing and write nothing
        doc = json.loads(registry_path.read_text())
        ids = sorted(e["id"] for e in doc["servers"])
        # Every acknowledged change is in the file, none twice, no unregistered entry back.
        assert ids == sorted(["base"] + [f"w{k}-kept" for k in range(8)])
        kept = {e["id"]: e for e in doc["servers"]}
        assert all(kept[f"w{k}-kept"]["pid"] == procs[k].pid for k in range(8))
        # generation still counts every change, however many writes carried them.
        assert doc["generation"] == start_gen + changes
        # Each refused change was refused (ENOTFOUND), wherever it was made.
        assert all(r["missing"] == 25 for r in reports)
        # Fewer durable writes than changes: waiting writers' changes rode along.
        assert 0 < renames < changes, (renames, changes)
        assert not [n for n in os.listdir(str(registry_path) + ".pending") if not n.startswith(".")], "requests or answers left behind"
    finally:
        _finish(procs)


def test_without_group_commit_every_change_is_its_own_write(registry_path: Path, lib) -> None:
    # The control for the test above: the rename count is what it says it is.
    with Registry(registry_path) as r:
        r.register({"id": "base", "url": "http://127.0.0.1:2/mcp", "liveness": "none"})
    reports, renames, procs = _crowd(registry_path, writers=4, rounds=10, env_extra={"PEERREG_GROUP_COMMIT": "0"})
    try:
        acked = sum(r["acked"] for r in reports)
        assert renames == acked
        assert not os.path.exists(str(registry_path) + ".pending")
    finally:
        _finish(procs)


# Registers (or unregisters) once, the lock already taken by the test; prints what happened.
ONE_CHANGE = """
import sys, time, peer_registry
path, op, sid = sys.argv[1], sys.argv[2], sys.argv[3]
reg = peer_registry.Registry(path)
if op == "unregister":
    # Static: not an entry this handle holds (its anti-entropy would put a held one back).
    reg.register({"id": sid, "url": "http://127.0.0.1:3/mcp", "liveness": "none"})
print("ready", flush=True)
sys.stdin.readline()
try:
    if op == "register":
        reg.register({"id": sid, "url": "http://127.0.0.1:3/mcp"})
    elif op == "unregister":
        reg.unregister(sid)
    else:
        reg.set_health(sid, "HEALTHY", "from " + op)
    print("ok", flush=True)
except peer_registry.RegistryError as e:
    print(type(e).__name__, e, flush=True)
sys.stdin.readline()
reg.close()
"""


def _hold_lock(registry_path: Path):
    """Takes the writers' lock as an older library version (or any plain flock user) does."""
    fd = os.open(str(registry_path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _pending_names(registry_path: Path) -> List[str]:
    d = str(registry_path) + ".pending"
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def _wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.005)


def test_a_timed_out_request_is_withdrawn_and_never_made(reg: Registry, registry_path: Path) -> None:
    reg.register({"id": "base", "url": "http://127.0.0.1:2/mcp", "liveness": "none"})
    fd = _hold_lock(registry_path)
    child = spawn_python(ONE_CHANGE, str(registry_path), "register", "late",
                         env=child_env({"PEER_REGISTRY_LOCK_TIMEOUT_MS": "300"}))
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        _wait_for(lambda: any(n.endswith(".req") for n in _pending_names(registry_path)), "the request")
        answer = child.stdout.readline().strip()
        assert answer.startswith("LockTimeoutError"), answer
        assert _pending_names(registry_path) == []
    finally:
        os.close(fd)
    # Released: nobody makes the withdrawn change later, and the id's lease went with it.
    with Registry(registry_path) as r:
        r.register({"id": "after", "url": "http://127.0.0.1:4/mcp", "liveness": "none"})
        assert "late" not in [e["id"] for e in r.list()]
        assert not (registry_path.parent / "leases" / "late.lease").exists()
    child.stdin.close()
    child.wait(timeout=30)
    reap(child)


def test_a_plain_flock_holder_is_waited_for_as_before(reg: Registry, registry_path: Path) -> None:
    # An older library version holding the lock answers nothing: the writer makes its change
    # itself once the lock is free.
    fd = _hold_lock(registry_path)
    child = spawn_python(ONE_CHANGE, str(registry_path), "register", "patient")
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        _wait_for(lambda: any(n.endswith(".req") for n in _pending_names(registry_path)), "the request")
        time.sleep(0.2)
    finally:
        os.close(fd)
    assert child.stdout.readline().strip() == "ok"
    assert reg.get("patient")["pid"] == child.pid
    assert _pending_names(registry_path) == []
    child.stdin.close()
    child.wait(timeout=30)
    reap(child)
    assert child.returncode == 0


def test_a_holder_that_dies_before_answering_loses_nothing(reg: Registry, registry_path: Path) -> None:
    """The holder makes the waiting unregister durably, then dies (PEERREG_CRASH_AT) before its
    answer: the requester, once it has the lock, makes it again idempotently and succeeds.
    Which of the two gets the lock first is the kernel's choice: trials until the holder died."""
    reg.register({"id": "target", "url": "http://127.0.0.1:5/mcp", "liveness": "none"})
    crashed = 0
    for trial in range(40):
        sid = f"gone-{trial}"
        requester = spawn_python(ONE_CHANGE, str(registry_path), "unregister", sid)
        # The holder's own change (set_health) is never queued: it waits for the lock itself.
        holder = spawn_python(ONE_CHANGE, str(registry_path), "target", "target",
                              env=child_env({"PEERREG_CRASH_AT": "after-group-write"}))
        assert requester.stdout.readline().strip() == "ready", requester.stderr.read()
        assert holder.stdout.readline().strip() == "ready", holder.stderr.read()
        fd = _hold_lock(registry_path)
        try:
            # The holder waits first: the kernel tends to wake flock's waiters in order.
            holder.stdin.write("go\n")
            holder.stdin.flush()
            time.sleep(0.05)
            requester.stdin.write("go\n")
            requester.stdin.flush()
            _wait_for(lambda: any(n.endswith(".req") for n in _pending_names(registry_path)), "the request")
        finally:
            os.close(fd)
        answer = requester.stdout.readline().strip()
        assert answer == "ok", answer
        holder.stdin.close()
        holder.wait(timeout=30)
        holder_err = holder.stderr.read()
        reap(holder)
        requester.stdin.close()
        requester.wait(timeout=30)
        reap(requester)
        assert requester.returncode == 0
        assert sid not in [e["id"] for e in reg.list()]
        assert not (registry_path.parent / "leases" / f"{sid}.lease").exists()
        if holder.returncode == 86:
            crashed += 1
            # Its durable write held the requester's change; the answer never came.
            break
        assert holder.returncode == 0, holder_err
    assert crashed == 1, "the holder never took the request in 40 trials"
    reg.register({"id": "after", "url": "http://127.0.0.1:6/mcp", "liveness": "none"})
    assert _pending_names(registry_path) == []
