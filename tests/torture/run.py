#!/usr/bin/env python3
"""Torture tests for peer-registry (issue 7): writers that crash at every step of a write,
writers killed at random moments, stale entries of every liveness mode, and hostile input
through every entry point of the C ABI. Everything goes through libpeerregistry's C ABI:
the writers and owners are tests/torture/helper.c processes, the checks use ctypes.

    python3 tests/torture/run.py [--size small|large] [--seed N] [--only crash,kill,stale,hostile]

`make test-torture` runs --size small (a minute or two), `make torture` --size large
(thousands of runs per section). The last line is "N passed, N failed"; the exit status is 1
when anything failed.

What is checked (docs/FORMAT.md is the contract):
  crash    For each PEERREG_CRASH_AT step, writers (one process per change) die there with exit
           code 86, over chains of varied prior states (fresh, hand-written by a "foreign" tool
           with unknown fields, legacy entries, dead entries; live leases held by this process).
           After each: the file parses and equals the state before the change (steps before
           the rename) or the state after it (from the rename on), compared by parsed content
           against a model of the format (tests/torture/model.py); the temp file holds the
           complete new state after write/fsync; the next writer's write completes in well
           under the lock timeout (PEER_REGISTRY_LOCK_TIMEOUT_MS=2000); no servers.json.tmp
           survives that write; the live entries are exactly the model's live entries.
  kill     A writer running a sequence of changes is SIGKILLed at a random moment: the file
           parses and equals the state after its last acknowledged change or the one after
           (nothing acknowledged is lost); the next writer gets the lock at once; no temp file
           survives it; the dead writer's lease entries are removed. Contended variant: a
           second writer is queued on the lock when the first is killed; it must finish every
           change (no ETIMEOUT) and none of its acknowledged entries may be missing.
  stale    SIGKILLed lease owners are never listed again and the next writer removes them and
           their lease files; SIGSTOPped ttl owners stay listed until ttlSeconds passes, then
           are not, and after SIGCONT their heartbeat says ENOTFOUND and re-registering works;
           a pid-liveness entry whose pid was reused by another process (forced through
           /proc/sys/kernel/ns_last_pid) is dead. The live are never dropped.
  legacy   Entries without an id (older tools) are never lost to a derived id: a file with two
           legacy entries for one port and the real id port-<port>-2 is readable in any order,
           and registering that real id keeps both legacy entries.
  hostile  Symlinks planted at the file, lock, temp, lease and leases paths (the target's content
           and mtime never change); a directory, file or lock writable by group/others or owned
           by another user (nobody); thousands of malformed entries, filters, ids, names,
           messages, paths and files (tests/torture/cases.py) through every entry point, each
           refused with an allowed code and a message, nothing written, and the helper's RSS
           bounded (see MEMORY_BOUND_KB) and flat across repeated passes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import abi  # noqa: E402
import cases as CS  # noqa: E402
import model as M  # noqa: E402
from abi import ENOTFOUND, EPERM, OK  # noqa: E402

STEPS = ["after-lock", "after-temp-create", "after-write", "after-fsync", "after-rename", "after-dir-fsync",
         "before-unlock"]
PRE_RENAME = {"after-lock", "after-temp-create", "after-write", "after-fsync"}
LOCK_TIMEOUT_MS = 2000
# "at once": the next writer's whole durable write, lock included, well under the lock timeout
# (a lock left held by the dead writer would cost the full timeout and fail with ETIMEOUT).
NEXT_WRITE_LIMIT_S = 1.0
# The hostile helper's resident memory: the peak (VmHWM, while 8 MiB inputs are in flight) stays
# under MEMORY_BOUND_KB, and after the second pass it does not grow by more than MEMORY_GROWTH_KB.
MEMORY_BOUND_KB = 64 * 1024
MEMORY_GROWTH_KB = 1024

SIZES = {
    "small": dict(crash_scenarios=2, crash_runs=50, kills=300, kill_ops=20, lease_rounds=6, lease_holders=8,
                  ttl_owners=4, ttl_rounds=1, pid_rounds=5, hostile_entries=5000, hostile_files=1000, hostile_passes=2),
    "large": dict(crash_scenarios=10, crash_runs=100, kills=3000, kill_ops=30, lease_rounds=50, lease_holders=16,
                  ttl_owners=10, ttl_rounds=3, pid_rounds=50, hostile_entries=50000, hostile_files=10000, hostile_passes=3),
}


class Results:
    def __init__(self) -> None:
        self.passed: Dict[str, int] = {}
        self.failed: Dict[str, int] = {}
        self.failures: List[str] = []
        self.notes: List[str] = []
        self.section = "?"

    def check(self, cond: bool, what: str) -> bool:
        if cond:
            self.passed[self.section] = self.passed.get(self.section, 0) + 1
        else:
            self.failed[self.section] = self.failed.get(self.section, 0) + 1
            self.failures.append(f"[{self.section}] {what}")
            if len(self.failures) <= 60:
                print(f"  FAIL [{self.section}] {what}", flush=True)
        return cond

    def note(self, text: str) -> None:
        self.notes.append(f"[{self.section}] {text}")
        print(f"  {text}", flush=True)


R = Results()


def child_env(**extra) -> dict:
    env = dict(os.environ)
    env["PEER_REGISTRY_LOCK_TIMEOUT_MS"] = str(LOCK_TIMEOUT_MS)
    env["SWIFT_BACKTRACE"] = "enable=no"
    env.pop("PEERREG_CRASH_AT", None)
    env.update(extra)
    return env


class Child:
    """A helper process whose stdout lines are read with timeouts."""

    def __init__(self, args: List[str], env: Optional[dict] = None):
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env or child_env())
        self.pid = self.p.pid
        self.buf = b""
        os.set_blocking(self.p.stdout.fileno(), False)

    def line(self, timeout: float = 10.0) -> Optional[str]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if not r:
                return None
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def wait_for(self, prefix: str, timeout: float = 10.0) -> Optional[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ln = self.line(left)
            if ln is None:
                return None
            if ln.startswith(prefix):
                return ln

    def kill(self) -> None:
        if self.p.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.p.kill()
        self.p.wait()
        self.p.stdout.close()


def make_private_dir(base: str, name: str) -> str:
    d = os.path.join(base, name)
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    return d


def write_foreign(path: str, doc) -> None:
    """Writes the file as a foreign tool would (no lock; aside + rename; mode 0600)."""
    data = doc if isinstance(doc, bytes) else json.dumps(doc, indent=2).encode()
    aside = path + ".foreign"
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.close(fd)
    os.rename(aside, path)


def now_ms() -> int:
    return int(time.time() * 1000)


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# ---- scenarios: a registry directory, its runner handle, and a model of who is alive ---------

class Scenario:
    def __init__(self, ctx: "Ctx", name: str, rng: random.Random):
        self.ctx = ctx
        self.rng = rng
        self.dir = make_private_dir(ctx.scratch, name)
        self.path = os.path.join(self.dir, "servers.json")
        self.tmp = self.path + ".tmp"
        self.world = M.World()
        self.own: set = set()
        self.n = 0
        self.next_write_max = 0.0
        self.next_writes = 0
        kind = rng.choice(["fresh", "foreign", "foreign-legacy"])
        if kind != "fresh":
            write_foreign(self.path, self.foreign_doc(legacy=kind == "foreign-legacy"))
        self.reg = abi.Registry(ctx.lib, self.path)
        for _ in range(rng.randint(0, 2)):
            id_ = self.new_id("own")
            rc, msg, _ = self.reg.register(self.entry(id_, "lease"))
            if R.check(rc == OK, f"runner lease register: {rc} {msg}"):
                self.world.leases[id_] = os.getpid()
                self.own.add(id_)

    def new_id(self, prefix: str = "e") -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    def foreign_doc(self, legacy: bool) -> dict:
        """A file written by someone else: unknown fields, and dead entries for the next writer."""
        me = os.getpid()
        t = now_ms()
        servers = [
            {"id": "f-none", "url": "http://127.0.0.1:7001/mcp", "liveness": "none", "x-unknown": {"kept": [1, 2.50, "x"]},
             "capabilities": {"tools": ["ft"], "resources": [], "prompts": [], "x-cap": True},
             "health": {"status": "DEGRADED", "message": "slow", "lastCheck": M.iso_from_millis(t), "x-h": 1}},
            {"id": "f-ttl", "url": "ws://127.0.0.1:7002/", "liveness": "ttl", "ttlSeconds": 86400,
             "lastSeen": M.iso_from_millis(t), "startedAt": M.iso_from_millis(t - 5000)},
            {"id": "f-pid", "url": "http://127.0.0.1:7003/", "liveness": "pid", "pid": me},
            {"id": "f-dead-ttl", "url": "http://127.0.0.1:7004/", "liveness": "ttl", "ttlSeconds": 60,
             "lastSeen": M.iso_from_millis(t - 3600_000)},
            {"id": "f-dead-pid", "url": "http://127.0.0.1:7005/", "liveness": "pid", "pid": dead_pid()},
            {"id": "f-dead-lease", "url": "http://127.0.0.1:7006/", "liveness": "lease", "pid": dead_pid()},
        ]
        if legacy:
            servers.append({"port": 7007, "url": "http://127.0.0.1:7007", "pid": me, "startedAt": t - 1000})
            servers.append({"port": 7008, "url": "http://127.0.0.1:7008", "pid": dead_pid(), "startedAt": "2026-01-01T00:00:00.000Z"})
        return {"version": 1, "generation": self.rng.randint(0, 10**6), "x-top": {"by": "an older tool"}, "servers": servers}

    def entry(self, id_: str, mode: str) -> dict:
        rng = self.rng
        port = rng.randint(1024, 60000)
        e = {"id": id_, "name": rng.choice(["Srv", "Ünïcødé ☃", "q\"uote\\d", "tab\tname"]),
             "url": f"http://127.0.0.1:{port}/mcp", "port": port, "transport": "http", "liveness": mode,
             "startedAt": M.iso_from_millis(now_ms() - rng.randint(0, 10**7)),
             "capabilities": {"tools": [f"tool-{id_}"] + rng.sample(["shared", "x", "y"], rng.randint(0, 2)),
                              "resources": [f"resource://{id_}/"], "prompts": []},
             "health": {"status": "UNKNOWN"}}
        if rng.random() < 0.15:
            e.pop("url")
            e.pop("port")
            e["transport"] = "stdio"
        if rng.random() < 0.4:
            e["metadata"] = {"n": rng.randint(0, 10**12), "f": 1.25, "nested": {"a": [None, True, "s"]}}
        if rng.random() < 0.3:
            e["x-future"] = {"v": rng.randint(0, 9)}
        if rng.random() < 0.3:
            e["health"] = {"status": rng.choice(["HEALTHY", "DEGRADED", "DOWN"]), "message": "m",
                           "lastCheck": M.iso_from_millis(now_ms())}
        if rng.random() < 0.2:
            e["requiresSession"] = rng.random() < 0.5
        if mode == "ttl":
            e["ttlSeconds"] = 86400
        if mode == "pid":
            e["pid"] = os.getpid()
        return e

    def doc(self) -> Optional[dict]:
        return M.read_doc(self.path)

    def alive_ids(self, doc: Optional[dict], own: set) -> List[str]:
        t = now_ms()
        return [e["id"] for e in (doc or {}).get("servers", []) if "id" in e and M._alive_any(e, self.world, own, t)]

    def random_op(self, doc: Optional[dict], own: set, allow_fail: bool = True) -> M.Op:
        rng = self.rng
        servers = (doc or {}).get("servers") or []
        ids = [e["id"] for e in servers if "id" in e]
        lease_held_elsewhere = [i for i in ids if i in self.own]
        mine = [e["id"] for e in servers if "id" in e and e["id"] not in self.own and
                (M.liveness_of(e) != "lease" or e["id"] in own)]
        live = [i for i in self.alive_ids(doc, own)]
        ops = [("new", 35), ("replace", 15 if mine else 0), ("unregister", (30 if len(ids) > 12 else 12) if mine else 0),
               ("health", 10 if live else 0), ("heartbeat", 10 if live else 0), ("prune", 4)]
        if allow_fail:
            ops += [("eexists", 4 if lease_held_elsewhere else 0), ("missing", 4), ("hb-missing", 3)]
        kind = rng.choices([k for k, _ in ops], [w for _, w in ops])[0]
        if kind == "new":
            return M.Op("register", self.entry(self.new_id(), rng.choice(["none", "ttl", "pid", "lease"])))
        if kind == "replace":
            return M.Op("register", self.entry(rng.choice(mine), rng.choice(["none", "ttl", "pid", "lease"])))
        if kind == "unregister":
            return M.Op("unregister", rng.choice(mine))
        if kind == "health":
            return M.Op("health", rng.choice(live), status=rng.randint(0, 3), message=rng.choice([None, "ok", "slow ☃", "x"]))
        if kind == "heartbeat":
            return M.Op("heartbeat", rng.choice(live))
        if kind == "prune":
            return M.Op("prune")
        if kind == "eexists":
            e = self.entry(rng.choice(lease_held_elsewhere), "lease")
            return M.Op("register", e)
        if kind == "missing":
            return M.Op("unregister", "missing-" + str(rng.randint(0, 10**6)))
        return M.Op("heartbeat", "missing-" + str(rng.randint(0, 10**6)))

    def check_live(self, doc: Optional[dict], what: str) -> None:
        """The live entries listed equal the model's live entries of the file (ids and legacy ports)."""
        rc, msg, listing = self.reg.list()
        if not R.check(rc == OK, f"{what}: list: {rc} {msg}"):
            return
        # a legacy entry (no id in the file) is listed under its derived id port-<port>, or without one
        got = [s.get("id") or f"port-{s.get('port')}" for s in listing["servers"]]
        t = now_ms()
        want = [e.get("id") or f"port-{e.get('port')}" for e in (doc or {}).get("servers", [])
                if M._alive_any(e, self.world, self.own, t)]
        R.check(got == want, f"{what}: live entries {got} != model {want}")
        R.check(listing["generation"] == (doc or {}).get("generation", 0), f"{what}: list generation {listing['generation']}")

    def next_write(self, what: str) -> None:
        """The next writer (this process, through the ABI): at once, temp file gone, as the model says."""
        before = self.doc()
        rng = self.rng
        if self.own and rng.random() < 0.2:
            op = M.Op("register", self.entry(rng.choice(sorted(self.own)), "lease"))  # an update of our own lease
        elif rng.random() < 0.15 and before and any("id" in e and e["id"] not in self.own for e in before["servers"]):
            op = M.Op("unregister", rng.choice([e["id"] for e in before["servers"] if "id" in e and e["id"] not in self.own]))
        else:
            op = M.Op("register", self.entry(self.new_id("n"), rng.choice(["none", "ttl", "pid", "lease", "lease"])))
        exp_rc, exp_after, own_after = M.apply(before, op, self.world, self.own, os.getpid())
        t0 = time.monotonic()
        if op.kind == "register":
            rc, msg, _ = self.reg.register(op.arg)
        else:
            rc, msg = self.reg.unregister(op.arg)
        dt = time.monotonic() - t0
        self.next_write_max = max(self.next_write_max, dt)
        self.next_writes += 1
        R.check(rc == exp_rc, f"{what}: next writer {op}: rc {rc} ({msg}), model {exp_rc}")
        R.check(dt < NEXT_WRITE_LIMIT_S, f"{what}: next writer took {dt * 1000:.0f} ms (lock timeout {LOCK_TIMEOUT_MS} ms)")
        R.check(not os.path.lexists(self.tmp), f"{what}: {self.tmp} outlived the next write")
        after = self.doc()
        why = M.matches(after, exp_after if exp_after is not None else before)
        R.check(why is None, f"{what}: after the next write: {why}")
        if rc == OK:
            for id_ in self.own - own_after:
                self.world.leases.pop(id_, None)
            for id_ in own_after - self.own:
                self.world.leases[id_] = os.getpid()
            self.own = own_after
        self.check_live(after, what)

    def close(self) -> None:
        self.reg.close()


class Ctx:
    def __init__(self, args):
        self.size = SIZES[args.size]
        self.seed = args.seed
        self.scratch = tempfile.mkdtemp(prefix="peerreg-torture-", dir=args.dir)
        os.chmod(self.scratch, 0o700)
        self.helper = os.path.join(REPO, "build", "torture", "helper")
        self.lib = abi.Lib(abi.default_lib_path(REPO))
        self.stats: Dict[str, object] = {}


# ---- crash: fault injection at every step of a write -----------------------------------------

def section_crash(ctx: Ctx) -> None:
    R.section = "crash"
    sz = ctx.size
    per_step = {s: 0 for s in STEPS}
    outcome = {s: {"before": 0, "after": 0, "no-write": 0} for s in STEPS}
    next_max = 0.0
    next_count = 0
    for si, step in enumerate(STEPS):
        for sc in range(sz["crash_scenarios"]):
            rng = random.Random(ctx.seed * 1000 + si * 100 + sc)
            s = Scenario(ctx, f"crash-{step}-{sc}", rng)
            for run in range(sz["crash_runs"]):
                what = f"{step} scenario {sc} run {run}"
                try:
                    before = s.doc()
                except Exception as e:  # noqa: BLE001
                    R.check(False, f"{what}: the file does not parse: {e}")
                    break
                op = s.random_op(before, set())
                opfile = os.path.join(s.dir, "op.txt")
                with open(opfile, "w") as f:
                    f.write(op.line() + "\n")
                p = subprocess.run([ctx.helper, "ops", s.path, opfile], env=child_env(PEERREG_CRASH_AT=step),
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
                exp_rc, exp_after, _ = M.apply(before, op, s.world, set(), writer_pid=-1)
                wrote = exp_after is not None
                reached = wrote or step in ("after-lock", "before-unlock")
                per_step[step] += 1
                if reached:
                    R.check(p.returncode == 86, f"{what}: {op}: exit {p.returncode}, expected 86 (crash at {step}); out {p.stdout[:200]!r}")
                else:
                    acks = [ln.split() for ln in p.stdout.decode().splitlines() if ln.startswith("ack ")]
                    R.check(p.returncode == 0 and len(acks) == 1 and int(acks[0][2]) == exp_rc,
                            f"{what}: {op}: exit {p.returncode} acks {acks}, expected rc {exp_rc} without reaching {step}")
                try:
                    actual = s.doc()
                except Exception as e:  # noqa: BLE001
                    R.check(False, f"{what}: after the crash the file does not parse: {e}")
                    break
                if wrote and step not in PRE_RENAME:
                    want, label = exp_after, "after"
                else:
                    want, label = before, "before" if wrote else "no-write"
                # A lease entry registered by the writer carries its pid: fill it in from the file.
                want = _fill_writer_pid(want, actual)
                why = M.matches(actual, want)
                if R.check(why is None, f"{what}: {op}: file is not the state {label} the change: {why}"):
                    outcome[step][label] += 1
                if wrote and step in ("after-write", "after-fsync"):
                    try:
                        tmp_doc = M.read_doc(s.tmp)
                        why = M.matches(tmp_doc, _fill_writer_pid(exp_after, tmp_doc))
                        R.check(why is None, f"{what}: the temp file is not the complete new state: {why}")
                    except Exception as e:  # noqa: BLE001
                        R.check(False, f"{what}: the temp file does not parse after {step}: {e}")
                elif wrote and step == "after-temp-create":
                    R.check(os.path.exists(s.tmp) and os.path.getsize(s.tmp) == 0, f"{what}: expected an empty temp file")
                elif wrote:
                    R.check(not os.path.lexists(s.tmp), f"{what}: temp file present after {step}")
                s.next_write(what)
            next_max = max(next_max, s.next_write_max)
            next_count += s.next_writes
            s.close()
    ctx.stats["crash_runs_per_step"] = per_step
    ctx.stats["crash_outcomes"] = outcome
    ctx.stats["crash_next_write_max_ms"] = round(next_max * 1000, 1)
    R.note("crash runs per step: " + ", ".join(f"{k} {v}" for k, v in per_step.items()))
    R.note("outcomes (file = before / after / no write needed): " +
           "; ".join(f"{k} {v['before']}/{v['after']}/{v['no-write']}" for k, v in outcome.items()))
    R.note(f"next writer after a crash: {next_count} writes, slowest {next_max * 1000:.1f} ms (limit {NEXT_WRITE_LIMIT_S * 1000:.0f} ms)")


def _fill_writer_pid(want, actual):
    """The model cannot know a crashed writer's pid in advance: where the model has pid -1 (a lease
    entry the writer registered), take the file's value if it is an integer."""
    if not isinstance(want, dict) or not isinstance(actual, dict):
        return want
    servers = want.get("servers")
    if not servers:
        return want
    by_id = {e.get("id"): e for e in actual.get("servers", []) if isinstance(e, dict)}
    out = dict(want)
    out["servers"] = []
    for e in servers:
        if e.get("pid") == -1 and isinstance(by_id.get(e.get("id"), {}).get("pid"), int):
            e = dict(e)
            e["pid"] = by_id[e["id"]]["pid"]
        out["servers"].append(e)
    return out


# ---- kill: SIGKILL at random moments of a writer in a loop -----------------------------------

def section_kill(ctx: Ctx) -> None:
    R.section = "kill"
    sz = ctx.size
    rng = random.Random(ctx.seed * 7 + 1)
    total = sz["kills"]
    per_scenario = 25
    stats = {"kills": 0, "none-acked": 0, "mid-sequence": 0, "all-acked": 0, "file=last-acked": 0,
             "file=in-flight-done": 0, "temp-left": 0}
    s = None
    calib = None
    next_max, next_count = 0.0, 0
    for k in range(total):
        if k % per_scenario == 0:
            if s:
                next_max, next_count = max(next_max, s.next_write_max), next_count + s.next_writes
                s.close()
            s = Scenario(ctx, f"kill-{k // per_scenario}", random.Random(ctx.seed * 31 + k))
        what = f"kill {k}"
        before = s.doc()
        # the op sequence, generated against the model (the writer's pid is filled in afterwards)
        ops: List[M.Op] = []
        state, own = before, set()
        for _ in range(sz["kill_ops"]):
            op = s.random_op(state, own)
            rc, after, own = M.apply(state, op, s.world, own, writer_pid=-1)
            ops.append(op)
            state = after if after is not None else state
        opfile = os.path.join(s.dir, "ops.txt")
        with open(opfile, "w") as f:
            f.write("".join(op.line() + "\n" for op in ops))
        if calib is None:
            t0 = time.monotonic()
            c = Child([ctx.helper, "ops", s.path, opfile, "--hold"])
            c.wait_for(f"ack {len(ops) - 1} ", 30)
            calib = time.monotonic() - t0
            c.kill()
            R.note(f"a writer runs {len(ops)} changes in {calib * 1000:.0f} ms: kills land uniformly in 0..{calib * 1200:.0f} ms")
            # this calibration run changed the file: regenerate against the new state
            before = s.doc()
            ops, state, own = [], before, set()
            for _ in range(sz["kill_ops"]):
                op = s.random_op(state, own)
                rc, after, own = M.apply(state, op, s.world, own, writer_pid=-1)
                ops.append(op)
                state = after if after is not None else state
            with open(opfile, "w") as f:
                f.write("".join(op.line() + "\n" for op in ops))
        c = Child([ctx.helper, "ops", s.path, opfile, "--hold"])
        time.sleep(rng.uniform(0, calib * 1.2))
        os.kill(c.pid, signal.SIGKILL)
        c.p.wait()
        out = c.buf + (c.p.stdout.read() or b"")
        c.p.stdout.close()
        acks = [ln.split() for ln in out.decode().splitlines() if ln.startswith("ack ")]
        stats["kills"] += 1
        # the model, with the writer's pid
        states, rcs, own = [before], [], set()
        for op in ops:
            rc, after, own = M.apply(states[-1], op, s.world, own, writer_pid=c.pid)
            rcs.append(rc)
            states.append(after if after is not None else states[-1])
        n = len(acks)
        R.check([int(a[2]) for a in acks] == rcs[:n], f"{what}: acknowledged results {[int(a[2]) for a in acks]} != model {rcs[:n]}")
        stats["none-acked" if n == 0 else "all-acked" if n == len(ops) else "mid-sequence"] += 1
        try:
            actual = s.doc()
        except Exception as e:  # noqa: BLE001
            R.check(False, f"{what}: the file does not parse after SIGKILL: {e}")
            continue
        if os.path.lexists(s.tmp):
            stats["temp-left"] += 1
        why_last = M.matches(actual, states[n])
        why_next = M.matches(actual, states[n + 1]) if n < len(ops) else "no further change"
        if why_last is None:
            stats["file=last-acked"] += 1
        elif why_next is None:
            stats["file=in-flight-done"] += 1
        R.check(why_last is None or why_next is None,
                f"{what}: after {n} acknowledged changes the file is neither that state ({why_last}) nor the next ({why_next})")
        s.next_write(what)
    if s:
        next_max, next_count = max(next_max, s.next_write_max), next_count + s.next_writes
        s.close()
    # Contended: a second writer B is queued on the lock (flock in a helper thread, the
    # library's slow path) while A is SIGKILLed; B must get the lock and finish every change.
    contended = {"runs": 0, "B writes": 0, "B slowest ms": 0.0}
    s = Scenario(ctx, "kill-contended", random.Random(ctx.seed * 37))
    for k in range(max(1, total // 5)):
        what = f"contended kill {k}"
        before = s.doc()
        ops, state, own = [], before, set()
        for _ in range(sz["kill_ops"]):
            op = s.random_op(state, own)
            rc, after, own = M.apply(state, op, s.world, own, writer_pid=-1)
            ops.append(op)
            state = after if after is not None else state
        a_file = os.path.join(s.dir, "ops-a.txt")
        with open(a_file, "w") as f:
            f.write("".join(op.line() + "\n" for op in ops))
        b_ids = [f"b-{k}-{i}" for i in range(10)]
        b_file = os.path.join(s.dir, "ops-b.txt")
        with open(b_file, "w") as f:
            f.write("".join(M.Op("register", {"id": i, "url": "http://127.0.0.1:9/", "liveness": "none"}).line() + "\n" for i in b_ids))
        a = Child([ctx.helper, "ops", s.path, a_file, "--hold"])
        b = Child([ctx.helper, "ops", s.path, b_file])
        time.sleep(rng.uniform(0, (calib or 0.03) * 1.2))
        os.kill(a.pid, signal.SIGKILL)
        a.p.wait()
        t0 = time.monotonic()
        b_acks = []
        while len(b_acks) < len(b_ids):
            ln = b.line(LOCK_TIMEOUT_MS / 1000 * 2)
            if ln is None:
                break
            if ln.startswith("ack "):
                b_acks.append(int(ln.split()[2]))
        b_took = time.monotonic() - t0
        b.kill()
        a.kill()
        contended["runs"] += 1
        contended["B writes"] += len(b_acks)
        contended["B slowest ms"] = max(contended["B slowest ms"], round(b_took * 1000, 1))
        R.check(b_acks == [0] * len(b_ids), f"{what}: the queued writer's results {b_acks} (expected {len(b_ids)} x 0)")
        try:
            doc = s.doc()
        except Exception as e:  # noqa: BLE001
            R.check(False, f"{what}: the file does not parse: {e}")
            continue
        ids = {e.get("id") for e in doc["servers"]}
        R.check(set(b_ids) <= ids, f"{what}: acknowledged registrations lost: {sorted(set(b_ids) - ids)}")
        for i in b_ids:
            s.reg.unregister(i)
        s.next_write(what)
    s.close()
    ctx.stats["kill_contended"] = contended
    R.note("contended SIGKILLs (a second writer queued on the lock): " + ", ".join(f"{k} {v}" for k, v in contended.items()))
    ctx.stats["kill"] = stats
    ctx.stats["kill_next_write_max_ms"] = round(next_max * 1000, 1)
    R.note("SIGKILLs: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    R.note(f"next writer after a SIGKILL: {next_count} writes, slowest {next_max * 1000:.1f} ms (limit {NEXT_WRITE_LIMIT_S * 1000:.0f} ms)")


# ---- stale entries ------------------------------------------------------------------------------

def lease_entry(id_: str) -> str:
    return json.dumps({"id": id_, "url": "http://127.0.0.1:9/mcp", "capabilities": {"tools": [f"tool-{id_}"]}})


def section_stale(ctx: Ctx) -> None:
    R.section = "stale"
    sz = ctx.size
    d = make_private_dir(ctx.scratch, "stale")
    path = os.path.join(d, "servers.json")
    reg = abi.Registry(ctx.lib, path)
    rng = random.Random(ctx.seed * 13 + 5)
    # the live that must never be dropped: a static entry and a lease held by this process
    R.check(reg.register({"id": "static", "url": "https://remote.example/mcp", "liveness": "none"})[0] == OK, "static register")
    R.check(reg.register({"id": "runner-lease", "url": "http://127.0.0.1:9/"})[0] == OK, "runner lease register")
    always = {"static", "runner-lease"}
    counts = {"lease owners killed": 0, "ttl owners stopped": 0, "pid reuses": 0, "pid reuse simulated": 0}

    def live_ids() -> set:
        rc, msg, listing = reg.list()
        R.check(rc == OK, f"list: {rc} {msg}")
        return {s.get("id") for s in (listing or {"servers": []})["servers"]}

    def fresh_live_ids() -> set:
        out = subprocess.run([ctx.helper, "list", path], stdout=subprocess.PIPE, env=child_env(), timeout=30).stdout.decode()
        try:
            return {s.get("id") for s in json.loads(out)["servers"]}
        except Exception:  # noqa: BLE001
            R.check(False, f"helper list: {out[:200]}")
            return set()

    def file_ids() -> set:
        return {e.get("id") for e in (M.read_doc(path) or {"servers": []})["servers"]}

    def next_write(tag: str) -> None:
        id_ = f"nw-{tag}"
        t0 = time.monotonic()
        rc, msg, _ = reg.register({"id": id_, "url": "http://127.0.0.1:9/", "liveness": "none"})
        R.check(rc == OK and time.monotonic() - t0 < NEXT_WRITE_LIMIT_S, f"next write {tag}: {rc} {msg}")
        reg.unregister(id_)

    # -- SIGKILLed lease owners
    for rnd in range(sz["lease_rounds"]):
        holders = {}
        for i in range(sz["lease_holders"]):
            id_ = f"hold-{rnd}-{i}"
            holders[id_] = Child([ctx.helper, "hold", path, lease_entry(id_)])
        for id_, c in holders.items():
            ln = c.wait_for("ready", 20)
            R.check(ln is not None and ln.split()[1] == "0", f"holder {id_}: {ln}")
        ids = set(holders)
        R.check(ids <= live_ids(), f"round {rnd}: holders not all listed")
        R.check(ids <= fresh_live_ids(), f"round {rnd}: holders not all listed by a fresh process")
        victims = set(rng.sample(sorted(ids), rng.randint(1, len(ids) - 1)))
        for v in victims:
            os.kill(holders[v].pid, signal.SIGKILL)
        for v in victims:
            holders[v].kill()
            counts["lease owners killed"] += 1
        survivors = ids - victims
        live = live_ids()
        R.check(not (live & victims), f"round {rnd}: killed lease owners still listed: {sorted(live & victims)}")
        R.check(survivors | always <= live, f"round {rnd}: live entries dropped: {sorted((survivors | always) - live)}")
        fresh = fresh_live_ids()
        R.check(not (fresh & victims) and survivors | always <= fresh, f"round {rnd}: a fresh process lists {sorted(fresh)}")
        for v in sorted(victims)[:3]:
            R.check(reg.get(v)[0] == ENOTFOUND, f"get {v} after SIGKILL")
            R.check(reg.resolve(abi.TOOL, f"tool-{v}")[0] == ENOTFOUND, f"resolve tool-{v} after SIGKILL")
        for sv in sorted(survivors)[:2]:
            R.check(reg.get(sv)[0] == OK, f"get {sv} (alive)")
        R.check(victims <= file_ids(), f"round {rnd}: dead entries already gone from the file before any write?")
        next_write(f"lease-{rnd}")
        fids = file_ids()
        R.check(not (fids & victims), f"round {rnd}: the next writer left dead entries: {sorted(fids & victims)}")
        R.check(survivors | always <= fids, f"round {rnd}: the next writer dropped live entries: {sorted((survivors | always) - fids)}")
        gone = [v for v in victims if os.path.lexists(os.path.join(d, "leases", v + ".lease"))]
        R.check(not gone, f"round {rnd}: lease files of dead owners left: {gone}")
        for sv in survivors:
            holders[sv].kill()
            counts["lease owners killed"] += 1
        R.check(not (live_ids() & survivors), f"round {rnd}: second wave still listed")
        next_write(f"lease-{rnd}-b")
        R.check(not (file_ids() & ids), f"round {rnd}: entries left after the second wave")

    # -- SIGSTOPped ttl owners
    for rnd in range(sz["ttl_rounds"]):
        ttl = 3
        owners = {}
        for i in range(sz["ttl_owners"] + 1):
            id_ = f"ttl-{rnd}-{i}"
            entry = json.dumps({"id": id_, "url": "http://127.0.0.1:9/", "liveness": "ttl", "ttlSeconds": ttl,
                                "capabilities": {"tools": [f"tool-{id_}"]}})
            owners[id_] = Child([ctx.helper, "ttl", path, entry, "200"])
        control = f"ttl-{rnd}-{sz['ttl_owners']}"  # keeps heartbeating: must stay listed throughout
        for id_, c in owners.items():
            ln = c.wait_for("registered", 20)
            R.check(ln == "registered 0", f"ttl owner {id_}: {ln}")
        stopped = set(owners) - {control}
        R.check(set(owners) <= live_ids(), "ttl owners not all listed")
        # stop each right after a heartbeat returned, so none is stopped inside a write (holding the lock)
        for id_ in sorted(stopped):
            ln = owners[id_].wait_for("heartbeat", 5)
            os.kill(owners[id_].pid, signal.SIGSTOP)
            R.check(ln == "heartbeat 0", f"{id_}: {ln}")
            counts["ttl owners stopped"] += 1
        t_stop = time.monotonic()
        time.sleep(0.8)
        live = live_ids()
        R.check(stopped <= live, f"ttl round {rnd}: stopped owners dropped before ttlSeconds: {sorted(stopped - live)}")
        time.sleep(ttl + 0.6 - (time.monotonic() - t_stop))
        live = live_ids()
        R.check(not (live & stopped), f"ttl round {rnd}: expired ttl entries still listed: {sorted(live & stopped)}")
        R.check(control in live and always <= live, f"ttl round {rnd}: live entries dropped: {sorted(({control} | always) - live)}")
        for id_ in sorted(stopped)[:2]:
            R.check(reg.get(id_)[0] == ENOTFOUND, f"get {id_} after expiry")
            R.check(reg.resolve(abi.TOOL, f"tool-{id_}")[0] == ENOTFOUND, f"resolve tool-{id_} after expiry")
        next_write(f"ttl-{rnd}")
        fids = file_ids()
        R.check(not (fids & stopped), f"ttl round {rnd}: the next writer left expired entries: {sorted(fids & stopped)}")
        R.check(control in fids, "ttl control entry dropped from the file")
        for id_ in stopped:
            os.kill(owners[id_].pid, signal.SIGCONT)
        for id_ in sorted(stopped):
            ln = owners[id_].wait_for("heartbeat", 5)
            R.check(ln == f"heartbeat {ENOTFOUND}", f"{id_}: first heartbeat after SIGCONT: {ln}")
            ln = owners[id_].wait_for("reregistered", 5)
            R.check(ln == "reregistered 0", f"{id_}: re-register after SIGCONT: {ln}")
        live = live_ids()
        R.check(set(owners) <= live, f"ttl round {rnd}: re-registered owners not listed: {sorted(set(owners) - live)}")
        for c in owners.values():
            c.kill()
        for id_ in owners:
            reg.unregister(id_)

    # -- a reused pid for pid liveness
    def spawn_with_pid(target: int) -> Optional[subprocess.Popen]:
        for _ in range(50):
            try:
                with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                    f.write(str(target - 1))
            except OSError:
                return None
            p = subprocess.Popen(["sleep", "1000"])
            if p.pid == target:
                return p
            p.kill()
            p.wait()
        return None

    keeper = subprocess.Popen(["sleep", "1000"])
    R.check(reg.register({"id": "pid-keeper", "url": "http://127.0.0.1:9/", "liveness": "pid", "pid": keeper.pid})[0] == OK, "pid keeper register")
    always.add("pid-keeper")
    for rnd in range(sz["pid_rounds"]):
        a = subprocess.Popen(["sleep", "1000"])
        time.sleep(0.05)  # a later clock tick for the process that will reuse the pid
        id_ = f"pidr-{rnd}"
        rc, msg, stored = reg.register({"id": id_, "url": "http://127.0.0.1:9/", "liveness": "pid", "pid": a.pid,
                                        "capabilities": {"tools": [f"tool-{id_}"]}})
        R.check(rc == OK and stored and stored.get("pidStartTime") == M.proc_start_time(a.pid), f"{id_}: register {rc} {msg}")
        R.check(id_ in live_ids(), f"{id_}: not listed while its process runs")
        a.kill()
        a.wait()
        R.check(id_ not in live_ids(), f"{id_}: listed after its process died")
        time.sleep(0.03)
        b = spawn_with_pid(a.pid)
        if b is None:
            # Could not get the pid back: simulate the reuse with a live process's pid and a wrong start time.
            counts["pid reuse simulated"] += 1
            b = subprocess.Popen(["sleep", "1000"])
            doc = M.read_doc(path)
            for e in doc["servers"]:
                if e.get("id") == id_:
                    e["pid"] = b.pid
            write_foreign(path, doc)
        else:
            counts["pid reuses"] += 1
        st_b = M.proc_start_time(b.pid)
        R.check(st_b is not None and st_b != stored.get("pidStartTime"), f"{id_}: the reusing process has the same start time")
        live = live_ids()
        R.check(id_ not in live, f"{id_}: listed although pid {b.pid} now belongs to another process")
        R.check(always <= live, f"{id_}: live entries dropped: {sorted(always - live)}")
        R.check(reg.get(id_)[0] == ENOTFOUND, f"{id_}: get after pid reuse")
        R.check(reg.resolve(abi.TOOL, f"tool-{id_}")[0] == ENOTFOUND, f"{id_}: resolve after pid reuse")
        R.check(id_ not in fresh_live_ids(), f"{id_}: a fresh process lists it after pid reuse")
        next_write(f"pid-{rnd}")
        fids = file_ids()
        R.check(id_ not in fids, f"{id_}: the next writer kept the entry of a reused pid")
        R.check(always <= fids, f"{id_}: the next writer dropped {sorted(always - fids)}")
        b.kill()
        b.wait()
    keeper.kill()
    keeper.wait()
    R.check("pid-keeper" not in live_ids(), "pid keeper listed after it died")
    reg.close()
    ctx.stats["stale"] = counts
    R.note("stale: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


# ---- hostile input ------------------------------------------------------------------------------

def fingerprint(path: str) -> Tuple:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        return ("dir", st.st_mtime_ns, tuple(sorted(os.listdir(path))))
    with open(path, "rb") as f:
        return ("file", st.st_mtime_ns, st.st_size, f.read())


def section_symlinks(ctx: Ctx) -> None:
    R.section = "hostile-symlinks"
    base = make_private_dir(ctx.scratch, "symlinks")
    outside = make_private_dir(ctx.scratch, "outside")
    entry = {"id": "s1", "url": "http://127.0.0.1:9/", "liveness": "none"}
    n = 0

    def target(name: str) -> str:
        t = os.path.join(outside, name)
        with open(t, "w") as f:
            f.write('{"version":1,"generation":5,"servers":[]}\n')
        os.chmod(t, 0o600)
        os.utime(t, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
        return t

    def fresh(name: str) -> Tuple[str, str]:
        d = make_private_dir(base, name)
        return d, os.path.join(d, "servers.json")

    def expect(rc_msg, codes, what: str, words=()) -> None:
        rc, msg = rc_msg[0], rc_msg[1]
        R.check(rc in codes, f"{what}: rc {rc} ({msg}), expected {codes}")
        for w in words:
            R.check(w in msg, f"{what}: message {msg!r} lacks {w!r}")

    def open_rc(path):
        try:
            r = abi.Registry(ctx.lib, path)
            r.close()
            return OK, ""
        except abi.Error as e:
            return e.code, e.message

    # 1. servers.json is a symlink before open, and planted after open
    d, p = fresh("file-before")
    t = target("file-before")
    fp = fingerprint(t)
    os.symlink(t, p)
    expect(open_rc(p), [EPERM], "open with servers.json -> symlink", ["symbolic link"])
    R.check(fingerprint(t) == fp, "file symlink target changed (open)")
    d, p = fresh("file-after")
    t = target("file-after")
    fp = fingerprint(t)
    reg = abi.Registry(ctx.lib, p)
    R.check(reg.register(entry)[0] == OK, "register before planting")
    os.unlink(p)
    os.symlink(t, p)
    expect(reg.register(dict(entry, id="s2")), [EPERM], "register with servers.json -> symlink", ["symbolic link"])
    expect(reg.list()[:2], [EPERM], "list with servers.json -> symlink")
    expect(reg.unregister("s1"), [EPERM], "unregister with servers.json -> symlink")
    expect(reg.set_health("s1", 1, "x"), [EPERM], "set_health with servers.json -> symlink")
    expect(reg.heartbeat("s1"), [EPERM], "heartbeat with servers.json -> symlink")
    expect(reg.prune()[:2], [EPERM], "prune with servers.json -> symlink")
    R.check(fingerprint(t) == fp, "file symlink target changed (writes)")
    R.check(os.path.islink(p), "the planted symlink was replaced (it must be refused, not overwritten)")
    reg.close()
    n += 8

    # 2. the lock file is a symlink: before open, and after open (another process opens)
    d, p = fresh("lock-before")
    t = target("lock-before")
    fp = fingerprint(t)
    os.symlink(t, p + ".lock")
    expect(open_rc(p), [EPERM], "open with servers.json.lock -> symlink", ["symbolic link"])
    R.check(fingerprint(t) == fp, "lock symlink target changed (open)")
    d, p = fresh("lock-after")
    t = target("lock-after")
    fp = fingerprint(t)
    reg = abi.Registry(ctx.lib, p)
    os.unlink(p + ".lock")
    os.symlink(t, p + ".lock")
    rc = reg.register(entry)[0]
    R.check(rc in (OK, EPERM, abi.EIO), f"register with the lock swapped for a symlink: {rc}")
    r2 = subprocess.run([ctx.helper, "list", p], stdout=subprocess.PIPE, env=child_env()).stdout.decode()
    R.check(r2.startswith("open-failed -6"), f"another process opened a registry whose lock is a symlink: {r2[:120]}")
    R.check(fingerprint(t) == fp, "lock symlink target changed (writes)")
    reg.close()
    n += 4

    # 3. the temp file is a symlink: removed, never followed
    for variant in ("to-file", "dangling", "to-dir"):
        d, p = fresh(f"temp-{variant}")
        t = target(f"temp-{variant}") if variant == "to-file" else (os.path.join(outside, "nowhere") if variant == "dangling" else make_private_dir(outside, "tmpdir"))
        fp = fingerprint(t) if os.path.exists(t) else None
        reg = abi.Registry(ctx.lib, p)
        os.symlink(t, p + ".tmp")
        rc, msg, _ = reg.register(entry)
        R.check(rc == OK, f"register with servers.json.tmp -> symlink ({variant}): {rc} {msg}")
        R.check(not os.path.lexists(p + ".tmp"), f"temp symlink ({variant}) still there after a write")
        R.check(os.path.isfile(p) and not os.path.islink(p), f"servers.json is not a regular file ({variant})")
        if fp is not None:
            R.check(fingerprint(t) == fp, f"temp symlink target changed ({variant})")
        else:
            R.check(not os.path.lexists(t), "a dangling temp symlink's target was created")
        R.check(reg.get("s1")[0] == OK, f"entry not written ({variant})")
        reg.close()
        n += 4

    # 4. a lease file is a symlink: register refuses; a lease entry whose lease is a symlink is dead
    d, p = fresh("lease")
    t = target("lease")
    fp = fingerprint(t)
    reg = abi.Registry(ctx.lib, p)
    R.check(reg.register({"id": "first", "url": "http://127.0.0.1:9/"})[0] == OK, "first lease register")
    os.symlink(t, os.path.join(d, "leases", "evil.lease"))
    gen = M.read_doc(p)["generation"]
    expect(reg.register({"id": "evil", "url": "http://127.0.0.1:9/"})[:2], [EPERM], "register with leases/evil.lease -> symlink", ["symbolic link"])
    R.check(M.read_doc(p)["generation"] == gen, "a refused lease register wrote the file")
    R.check(fingerprint(t) == fp, "lease symlink target changed (register)")
    # an entry in the file whose lease file is a symlink (planted by a foreign writer)
    doc = M.read_doc(p)
    doc["servers"].append({"id": "planted", "url": "http://127.0.0.1:9/", "liveness": "lease", "pid": os.getpid()})
    write_foreign(p, doc)
    os.symlink(t, os.path.join(d, "leases", "planted.lease"))
    R.check("planted" not in reg.live_ids(), "an entry whose lease file is a symlink is listed")
    R.check(reg.register({"id": "other", "url": "http://127.0.0.1:9/", "liveness": "none"})[0] == OK, "write after planting")
    R.check("planted" not in {e.get("id") for e in M.read_doc(p)["servers"]}, "the symlinked-lease entry survived a write")
    R.check(fingerprint(t) == fp, "lease symlink target changed (prune)")
    R.check(reg.prune()[0] == OK and fingerprint(t) == fp, "prune followed a lease symlink")
    reg.close()
    n += 7

    # 5. leases/ itself is a symlink to another directory
    d, p = fresh("leasesdir")
    other = make_private_dir(outside, "other-leases")
    fp = fingerprint(other)
    os.symlink(other, os.path.join(d, "leases"))
    reg = abi.Registry(ctx.lib, p)
    expect(reg.register({"id": "x", "url": "http://127.0.0.1:9/"})[:2], [EPERM], "register with leases -> symlink")
    R.check(fingerprint(other) == fp, "a file was created through the leases symlink")
    R.check(reg.register({"id": "y", "url": "http://127.0.0.1:9/", "liveness": "none"})[0] == OK, "non-lease register with leases -> symlink")
    R.check(fingerprint(other) == fp, "the leases symlink target changed")
    reg.close()
    n += 4

    # 6. a hard link to servers.json; servers.json is a FIFO or a directory
    d, p = fresh("hardlink")
    reg = abi.Registry(ctx.lib, p)
    R.check(reg.register(entry)[0] == OK, "register before the hard link")
    link = os.path.join(outside, "hardlink-copy")
    os.link(p, link)
    fp = fingerprint(link)
    expect(open_rc(p), [EPERM], "open with a hard-linked servers.json", ["hard link"])
    # A handle opened before the link may still replace servers.json (a rename never writes
    # through the other link), or refuse; either way the linked inode is never written.
    rc = reg.register(dict(entry, id="s3"))[0]
    R.check(rc in (OK, EPERM), f"register with a hard-linked servers.json: {rc}")
    R.check(fingerprint(link) == fp, "the hard link's content changed")
    with open(link, "a") as f:
        f.write(" ")  # now it changed under the handle: it must be re-read, and refused
    fp = fingerprint(link)
    if os.path.samefile(link, p):
        expect(reg.register(dict(entry, id="s4"))[:2], [EPERM], "register with a hard-linked, changed servers.json", ["hard link"])
        R.check(fingerprint(link) == fp, "the hard link's content changed (2)")
    reg.close()
    d, p = fresh("fifo")
    os.mkfifo(p, 0o600)
    expect(open_rc(p), [EPERM], "open with servers.json a FIFO")
    d, p = fresh("dirfile")
    os.mkdir(p, 0o700)
    expect(open_rc(p), [EPERM], "open with servers.json a directory")
    n += 5
    ctx.stats["symlink_cases"] = n


def section_permissions(ctx: Ctx) -> None:
    R.section = "hostile-permissions"
    base = make_private_dir(ctx.scratch, "perms")
    nobody = 65534
    is_root = os.geteuid() == 0
    n = 0

    def open_rc(path):
        try:
            r = abi.Registry(ctx.lib, path)
            r.close()
            return OK, ""
        except abi.Error as e:
            return e.code, e.message

    def check_open(path: str, what: str, words=()):
        rc, msg = open_rc(path)
        R.check(rc == EPERM, f"{what}: open rc {rc} ({msg})")
        for w in words:
            R.check(w in msg, f"{what}: message {msg!r} lacks {w!r}")
        R.check(not os.path.lexists(path + ".tmp"), f"{what}: a temp file was created")

    for mode in (0o770, 0o707, 0o777, 0o720, 0o702, 0o1777):
        d = make_private_dir(base, f"dir-{mode:o}")
        os.chmod(d, mode)
        check_open(os.path.join(d, "servers.json"), f"directory mode {mode:o}", ["chmod 700"])
        R.check(not os.path.exists(os.path.join(d, "servers.json")), f"dir {mode:o}: servers.json created")
        n += 1
    # files writable by group/others: servers.json and the lock
    for name in ("servers.json", "servers.json.lock"):
        for mode in (0o620, 0o602, 0o666):
            d = make_private_dir(base, f"{name}-{mode:o}")
            p = os.path.join(d, "servers.json")
            write_foreign(p, {"version": 1, "generation": 3, "servers": []})
            f = os.path.join(d, name)
            if not os.path.exists(f):
                open(f, "w").close()
            os.chmod(f, mode)
            fp = fingerprint(p)
            check_open(p, f"{name} mode {mode:o}", ["chmod 600"])
            R.check(fingerprint(p) == fp, f"{name} mode {mode:o}: servers.json changed")
            n += 1
    # a handle open before the file turned world-writable (and someone else wrote to it) refuses it
    d = make_private_dir(base, "turns-unsafe")
    p = os.path.join(d, "servers.json")
    reg = abi.Registry(ctx.lib, p)
    R.check(reg.register({"id": "a", "url": "http://127.0.0.1:9/", "liveness": "none"})[0] == OK, "register before chmod")
    os.chmod(p, 0o666)
    with open(p, "a") as f:
        f.write(" \n")
    fp = fingerprint(p)
    rc, msg, _ = reg.register({"id": "b", "url": "http://127.0.0.1:9/", "liveness": "none"})
    R.check(rc == EPERM and "chmod 600" in msg, f"register after servers.json became 0666 and changed: {rc} {msg}")
    R.check(reg.list()[0] == EPERM, "list after servers.json became 0666 and changed")
    R.check(fingerprint(p) == fp, "servers.json changed after it became 0666")
    reg.close()
    n += 1
    # owned by another user
    if is_root:
        d = make_private_dir(base, "dir-nobody")
        os.chown(d, nobody, nobody)
        check_open(os.path.join(d, "servers.json"), "directory owned by nobody", ["owned by uid 65534"])
        n += 1
        for name in ("servers.json", "servers.json.lock"):
            d = make_private_dir(base, f"{name}-nobody")
            p = os.path.join(d, "servers.json")
            write_foreign(p, {"version": 1, "generation": 3, "servers": []})
            f = os.path.join(d, name)
            if not os.path.exists(f):
                open(f, "w").close()
            os.chmod(f, 0o600)
            os.chown(f, nobody, nobody)
            fp = fingerprint(p)
            check_open(p, f"{name} owned by nobody", ["owned by uid 65534"])
            R.check(fingerprint(p) == fp, f"{name} owned by nobody: servers.json changed")
            n += 1
        # leases/ owned by nobody or writable by others; a lease file owned by nobody
        for variant in ("leases-nobody", "leases-0777", "lease-file-nobody"):
            d = make_private_dir(base, variant)
            p = os.path.join(d, "servers.json")
            leases = make_private_dir(d, "leases")
            if variant == "leases-nobody":
                os.chown(leases, nobody, nobody)
            elif variant == "leases-0777":
                os.chmod(leases, 0o777)
            else:
                lf = os.path.join(leases, "x.lease")
                open(lf, "w").close()
                os.chmod(lf, 0o600)
                os.chown(lf, nobody, nobody)
            reg = abi.Registry(ctx.lib, p)
            rc, msg, _ = reg.register({"id": "x", "url": "http://127.0.0.1:9/"})
            R.check(rc == EPERM, f"{variant}: lease register rc {rc} ({msg})")
            R.check(not os.path.exists(p), f"{variant}: servers.json written although the lease was refused")
            reg.close()
            n += 1
    else:
        R.note("not root: the ownership cases (chown to nobody) were skipped")
    ctx.stats["permission_cases"] = n


def section_malformed(ctx: Ctx) -> None:
    R.section = "hostile-inputs"
    sz = ctx.size
    d = make_private_dir(ctx.scratch, "malformed")
    make_private_dir(d, "isdir")
    make_private_dir(d, "fifo")
    os.mkfifo(os.path.join(d, "fifo", "servers.json"), 0o600)
    reg_dir = make_private_dir(d, "reg")
    cases = CS.generate(ctx.seed, sz["hostile_entries"], sz["hostile_files"], d)
    casefile = os.path.join(d, "cases.bin")
    CS.write_case_file(cases, casefile)
    passes = sz["hostile_passes"]
    t0 = time.monotonic()
    p = subprocess.run([ctx.helper, "hostile", os.path.join(reg_dir, "servers.json"), casefile, str(passes)],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env(), timeout=3600)
    dt = time.monotonic() - t0
    out = p.stdout.decode("utf-8", "replace").splitlines()
    rss = {}
    summary = None
    fails: Dict[str, List[str]] = {}
    for ln in out:
        parts = ln.split(" ", 2)
        if parts[0] == "rss":
            rss[parts[1]] = int(parts[2])
        elif parts[0] == "hostile":
            summary = (int(parts[1]), int(parts[2]))
        elif parts[0] == "fail":
            idx = int(parts[1])
            label = cases[idx].label if 0 <= idx < len(cases) else "(whole run)"
            kind = CS.KIND_NAMES[cases[idx].kind] if 0 <= idx < len(cases) else ""
            fails.setdefault(f"{kind}: {label}", []).append(parts[2] if len(parts) > 2 else "")
    R.check(p.returncode in (0, 1) and summary is not None, f"hostile helper crashed: exit {p.returncode}, last lines {out[-3:]}")
    by_kind: Dict[str, int] = {}
    for c in cases:
        by_kind[CS.KIND_NAMES[c.kind]] = by_kind.get(CS.KIND_NAMES[c.kind], 0) + 1
    # every case: one check (its failures, if any, reported once per label)
    failed_labels = set(fails)
    for c in cases:
        key = f"{CS.KIND_NAMES[c.kind]}: {c.label}"
        if key in failed_labels:
            failed_labels.discard(key)
            R.check(False, f"{key} (expected {sorted(abi.NAMES[x] for x in c.codes)}): {fails[key][0]}")
        else:
            R.passed[R.section] = R.passed.get(R.section, 0) + 1
    for key in failed_labels:
        R.check(False, f"{key}: {fails[key][0]}")
    ctx.stats["hostile_inputs"] = len(cases)
    ctx.stats["hostile_by_entry_point"] = by_kind
    ctx.stats["hostile_calls"] = summary
    R.note(f"{len(cases)} hostile inputs x {passes} passes in {dt:.1f} s: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
    # memory
    peak = rss.get("peak", 0)
    last = rss.get(f"pass{passes}", 0)
    second = rss.get("pass2", last)
    ctx.stats["hostile_rss_kb"] = rss
    R.check(0 < peak <= MEMORY_BOUND_KB, f"hostile helper peak RSS {peak} kB > bound {MEMORY_BOUND_KB} kB")
    R.check(last - second <= MEMORY_GROWTH_KB, f"hostile helper RSS grew {last - second} kB after pass 2 (bound {MEMORY_GROWTH_KB} kB)")
    R.note(f"memory: RSS start {rss.get('start')} kB, after pass 1 {rss.get('pass1')} kB, after pass {passes} {last} kB, "
           f"peak {peak} kB (bound {MEMORY_BOUND_KB} kB; growth after pass 2 {last - second} kB, bound {MEMORY_GROWTH_KB} kB)")


# ---- legacy entries: derived ids never cost an entry ------------------------------------------

def section_legacy(ctx: Ctx) -> None:
    """Entries without an id (older tools) are read as port-<port>, port-<port>-2, ... and are
    "never silently dropped" (docs/FORMAT.md). A derived id can equal a real id."""
    R.section = "legacy-ids"
    base = make_private_dir(ctx.scratch, "legacy")
    a = {"port": 80, "url": "http://127.0.0.1:80/a", "pid": 1}
    b = {"port": 80, "url": "http://127.0.0.1:80/b", "pid": 1}
    real = {"id": "port-80-2", "url": "http://127.0.0.1:8081/", "liveness": "none"}

    def legacy_urls(doc) -> List[str]:
        return [e["url"] for e in doc["servers"] if "id" not in e]

    # A valid file — two legacy entries for one port and a real id that equals the second one's
    # derived id — is readable whatever the order of its entries.
    for order in ([a, real, b], [a, b, real], [real, a, b]):
        d = make_private_dir(base, "order-" + "".join("r" if e is real else e["url"][-1] for e in order))
        p = os.path.join(d, "servers.json")
        write_foreign(p, {"version": 1, "generation": 1, "servers": order})
        reg = abi.Registry(ctx.lib, p)
        rc, msg, listing = reg.list()
        names = "".join("r" if e is real else e["url"][-1] for e in order)
        R.check(rc == OK and len(listing["servers"]) == 3,
                f"order {names}: a valid file with legacy entries and the real id port-80-2 is refused: {rc} {msg}")
        reg.close()
    # Registering a real id that equals a legacy entry's derived id does not delete that entry.
    d = make_private_dir(base, "register")
    p = os.path.join(d, "servers.json")
    write_foreign(p, {"version": 1, "generation": 1, "servers": [a, b]})
    reg = abi.Registry(ctx.lib, p)
    rc, msg, _ = reg.register(real)
    doc = M.read_doc(p)
    R.check(legacy_urls(doc) == [a["url"], b["url"]],
            f"register of id port-80-2 (rc {rc} {msg}) dropped a legacy entry: legacy entries left {legacy_urls(doc)}")
    reg.close()


# ---- main -------------------------------------------------------------------------------------

def build_helper(ctx: Ctx) -> None:
    src = os.path.join(HERE, "helper.c")
    lib = os.path.join(REPO, "build", "lib", "libpeerregistry.so.0")
    if not os.path.exists(lib):
        sys.exit(f"tests/torture: {lib} missing; run: make lib")
    if os.path.exists(ctx.helper) and os.path.getmtime(ctx.helper) > max(os.path.getmtime(src), os.path.getmtime(os.path.realpath(lib))):
        return
    os.makedirs(os.path.dirname(ctx.helper), exist_ok=True)
    subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-I" + os.path.join(REPO, "include"), src,
                    "-L" + os.path.join(REPO, "build", "lib"), "-lpeerregistry", "-Wl,-rpath," + os.path.join(REPO, "build", "lib"),
                    "-o", ctx.helper], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("TORTURE_SEED", "7")))
    ap.add_argument("--only", default="crash,kill,stale,hostile,legacy")
    ap.add_argument("--dir", default=None, help="where scratch registries go (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    os.environ["PEER_REGISTRY_LOCK_TIMEOUT_MS"] = str(LOCK_TIMEOUT_MS)
    os.environ["SWIFT_BACKTRACE"] = "enable=no"
    os.environ.pop("PEERREG_CRASH_AT", None)
    ctx = Ctx(args)
    build_helper(ctx)
    only = set(args.only.split(","))
    sections = [("crash", section_crash), ("kill", section_kill), ("stale", section_stale),
                ("hostile", section_symlinks), ("hostile", section_permissions), ("hostile", section_malformed),
                ("legacy", section_legacy)]
    print(f"torture tests: size {args.size}, seed {args.seed}, scratch {ctx.scratch}", flush=True)
    t_all = time.monotonic()
    try:
        for name, fn in sections:
            if name not in only:
                continue
            t0 = time.monotonic()
            print(f"== {fn.__name__[len('section_'):]}", flush=True)
            try:
                fn(ctx)
            except Exception:  # noqa: BLE001
                R.check(False, f"{fn.__name__} raised:\n{traceback.format_exc()}")
            print(f"   {R.passed.get(R.section, 0)} passed, {R.failed.get(R.section, 0)} failed "
                  f"({time.monotonic() - t0:.1f} s)", flush=True)
    finally:
        if args.keep or R.failures:
            print(f"scratch kept: {ctx.scratch}")
        else:
            subprocess.run(["chmod", "-R", "u+rwx", ctx.scratch], check=False)
            shutil.rmtree(ctx.scratch, ignore_errors=True)
    stats_path = os.path.join(REPO, "build", "torture", f"stats-{args.size}.json")
    with open(stats_path, "w") as f:
        json.dump(ctx.stats, f, indent=1, default=str)
    print(f"== summary ({time.monotonic() - t_all:.0f} s; figures in {os.path.relpath(stats_path, REPO)})")
    for sec in sorted(set(R.passed) | set(R.failed)):
        print(f"  {sec:22s} {R.passed.get(sec, 0):6d} passed {R.failed.get(sec, 0):4d} failed")
    if len(R.failures) > 60:
        print(f"  ({len(R.failures) - 60} more failures not shown)")
    total_p, total_f = sum(R.passed.values()), sum(R.failed.values())
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
