#!/usr/bin/env python3
"""The cross-language crowd test (issue 4; DESIGN.md, "Quality bars").

Python, Node and Go processes (8 each by default; plus Swift's registry-crowd-worker when one is
given) register, list, resolve, update health and unregister hundreds of times, at once, into
ONE temporary registry, each through its own language's binding. The driver SIGKILLs a few of
them (2 per language by default) in the middle of the run, at a random acknowledgement. Then:

  1. every surviving worker finished all its iterations without an error of its own (each checks
     that what it just registered lists and resolves, and that its kept entries never vanish);
  2. the file parses and validates against docs/servers.schema.json (tests/schema/validate.py);
  3. the file holds exactly the entries the surviving processes acknowledged and did not
     unregister — no more, no less — with the field values their writers gave, the last health
     each set, and the pid of the process that wrote them; none of a killed process;
  4. its generation counts every acknowledged write (a lost update would make it smaller);
  5. a process in each language lists exactly that set, and reads entries written in every other
     language with field values identical to each other and to the file; killed processes'
     entries are not found from any language;
  6. when the survivors close their handles, their lease entries go, and the file parses.

Nothing waits for a fixed time: every step waits for an answer, under one overall deadline.

WORKER PROTOCOL (tests/crowd/worker.py, worker.js, go/main.go; Swift's Tests/CrowdWorker shares
phase 1, without the start barrier): `worker <registry> <name> <iterations>`, name =
"<lang>-<n>". Open the registry, print "READY" and wait for the line "GO" on stdin, so that
every process starts writing at the same moment. For i in 0..<iterations,
id = "<name>-<i>": register the entry of `expected_entry` (lease liveness) and print "ACK <id>"
once register returned; list with the filter tool=tool-<id> (must be exactly <id>) and resolve
tool-<id>; set health (HEALTHY when i % 4 == 0, else DEGRADED, message "<name> iteration <i>");
when i is odd, unregister it and print "UNREG <id>". Every 25 iterations list everything: all
kept ids present, no unregistered one. Then print "DONE <json counts>" and serve commands on
stdin, one answer line each: "GET <id>" -> "GOT <id> <entry json>" | "ERR <id> <code> <msg>";
"LIST" -> "LISTED <json array of ids>"; "HEALTH <id> <STATUS> <message>" -> "OK" | "ERR ...".
At EOF on stdin: close the registry handle and exit 0. Any failure: a message on stderr, exit 1.
Lines are written with one write(2) each, so what was printed survives a SIGKILL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCHEMA = REPO / "docs" / "servers.schema.json"
VALIDATE = REPO / "tests" / "schema" / "validate.py"

LANG_INDEX = {"py": 0, "node": 1, "go": 2}
METADATA_TEXT = "h\u00e9llo \u2713 \"quoted\" \\ </tag>"
# The fields compared across languages (DESIGN: "identical field values").
FIELDS = ("id", "name", "url", "port", "transport", "pid", "liveness", "capabilities", "health", "metadata")
NOT_FOUND = -2


class CrowdFailure(Exception):
    pass


def canonical(value: Any) -> str:
    """Type-exact comparison of parsed JSON: 1 and 1.0, or true and 1, differ."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@dataclass
class Worker:
    name: str
    lang: str
    number: int
    argv: List[str]
    stderr_path: Path
    iterations: int
    kill_at: Optional[int] = None  # SIGKILL after this many ACK/UNREG lines
    proc: Optional["subprocess.Popen[bytes]"] = None
    buffer: bytes = b""
    lines: List[str] = field(default_factory=list)
    acks: List[str] = field(default_factory=list)
    unregs: List[str] = field(default_factory=list)
    # ACK lines followed by another line: that iteration's set_health completed.
    health_done: int = 0
    ready: bool = False
    done: Optional[Dict[str, int]] = None
    killed: bool = False
    eof: bool = False
    replies: List[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def describe(self) -> str:
        last = self.lines[-1] if self.lines else "(nothing)"
        return (f"{self.name} (pid {self.proc.pid if self.proc else '-'}, {len(self.acks)} ACK, "
                f"{len(self.unregs)} UNREG, last line {last!r}, exit {self.proc.poll() if self.proc else '-'}); "
                f"stderr: {self.stderr_tail()!r}")


def expected_entry(worker: Worker, i: int) -> Dict[str, Any]:
    """What the writer registered for iteration i and the health it set last (FIELDS only)."""
    name, id = worker.name, f"{worker.name}-{i}"
    if worker.lang == "swift":  # Tests/CrowdWorker/main.swift
        return {
            "id": id, "name": f"crowd {name}", "url": f"http://127.0.0.1:{20000 + i}/mcp",
            "port": 20000 + i, "transport": "http", "pid": worker.pid, "liveness": "lease",
            "capabilities": {"tools": [f"tool-{id}", f"shared-{name}"], "resources": [], "prompts": []},
            "health": {"status": "HEALTHY", "message": f"iteration {i}"},
            "metadata": {"worker": name, "i": i},
        }
    port = 10000 + LANG_INDEX[worker.lang] * 10000 + worker.number * 1000 + i
    return {
        "id": id, "name": f"crowd {name} #{i}", "url": f"http://127.0.0.1:{port}/mcp", "port": port,
        "transport": "http", "pid": worker.pid, "liveness": "lease",
        "capabilities": {"tools": [f"tool-{id}", f"shared-{worker.lang}"],
                         "resources": [f"resource://{id}/"], "prompts": [f"prompt-{name}"]},
        "health": {"status": "HEALTHY" if i % 4 == 0 else "DEGRADED", "message": f"{name} iteration {i}"},
        "metadata": {"lang": worker.lang, "worker": name, "i": i, "text": METADATA_TEXT,
                     "nested": {"list": [1, 2.5, -3, True, None], "empty": {}}},
    }


def project(entry: Dict[str, Any]) -> Dict[str, Any]:
    """The compared fields, as a deep copy. An absent capability list reads as []: the library
    stores all three lists, [] when empty, while the Go binding's Entry encodes an empty list as
    no list (omitempty) — the same value for its users, a different spelling in JSON."""
    projected = json.loads(json.dumps({k: entry.get(k) for k in FIELDS}))
    capabilities = projected.get("capabilities")
    if isinstance(capabilities, dict):
        for key in ("tools", "resources", "prompts"):
            capabilities.setdefault(key, [])
    return projected


class Crowd:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="peerreg-crowd-"))
        self.registry = self.tmp / "servers.json"
        self.deadline = time.monotonic() + args.timeout
        self.selector = selectors.DefaultSelector()
        self.workers: List[Worker] = []
        self.rng = random.Random(args.seed)
        self.timings: Dict[str, float] = {}

    # ---- processes --------------------------------------------------------------------------

    def plan(self) -> None:
        env_py = dict(os.environ)
        env_py["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "bindings" / "python" / "src"),
                                                             env_py.get("PYTHONPATH")]))
        self.env = env_py
        langs = [("py", [sys.executable, str(HERE / "worker.py")], self.args.per_lang),
                 ("node", [self.args.node, str(HERE / "worker.js")], self.args.per_lang),
                 ("go", [self.args.go_worker], self.args.per_lang)]
        if self.args.swift_worker:
            langs.append(("swift", [self.args.swift_worker, "crowd"], self.args.swift_workers))
        for lang, command, count in langs:
            # Swift's worker is the debug build test-swift leaves behind: its slower writes hold
            # the lock longer, so it does fewer of them.
            iterations = self.args.swift_iterations if lang == "swift" else self.args.iterations
            lines_per_worker = iterations + iterations // 2
            group = []
            for n in range(count):
                name = f"{lang}-{n}"
                group.append(Worker(name, lang, n, command + [str(self.registry), name, str(iterations)],
                                    self.tmp / f"{name}.stderr", iterations))
            kills = self.args.swift_kills if lang == "swift" else self.args.kills_per_lang
            for victim in self.rng.sample(group, min(kills, len(group) - 1)):
                # Somewhere in the first three quarters of its run: mid-run, while others write.
                victim.kill_at = self.rng.randint(max(1, lines_per_worker // 10), lines_per_worker * 3 // 4)
            self.workers += group

    def spawn(self, w: Worker) -> None:
        with open(w.stderr_path, "wb") as stderr:
            w.proc = subprocess.Popen(w.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=stderr, env=self.env, cwd=self.tmp)
        os.set_blocking(w.proc.stdout.fileno(), False)
        self.selector.register(w.proc.stdout, selectors.EVENT_READ, w)

    def start(self) -> None:
        """Every binding worker opens the registry and waits; then all are let go at once.
        Swift's worker has no barrier: it starts right after the others are let go."""
        barrier = [w for w in self.workers if w.lang != "swift"]
        for w in barrier:
            self.spawn(w)
        self.pump(lambda: all(w.ready for w in barrier))
        for w in barrier:
            w.proc.stdin.write(b"GO\n")
            w.proc.stdin.flush()
        for w in self.workers:
            if w.lang == "swift":
                self.spawn(w)

    def pump(self, until) -> None:
        """Read worker output until until() is true; fail at the deadline."""
        while not until():
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise CrowdFailure("overall deadline passed; still waiting for:\n  " + "\n  ".join(
                    w.describe() for w in self.workers if w.proc and not w.eof))
            for key, _ in self.selector.select(timeout=min(left, 1.0)):
                self.read(key.data)

    def read(self, w: Worker) -> None:
        assert w.proc is not None and w.proc.stdout is not None
        try:
            chunk = os.read(w.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if not chunk:
            w.eof = True
            self.selector.unregister(w.proc.stdout)
            w.proc.wait()
            if not w.killed and w.done is None:
                raise CrowdFailure(f"worker exited before finishing: {w.describe()}")
            return
        w.buffer += chunk
        *complete, w.buffer = w.buffer.split(b"\n")
        for raw in complete:
            self.line(w, raw.decode("utf-8"))

    def line(self, w: Worker, text: str) -> None:
        w.lines.append(text)
        word, _, rest = text.partition(" ")
        if w.done is not None:
            w.replies.append(text)
            return
        if word == "READY" and not w.lines[:-1]:
            w.ready = True
            return
        if w.acks and w.lines[-2:-1] == [f"ACK {w.acks[-1]}"]:
            w.health_done += 1  # the line after an ACK comes after that iteration's set_health
        if word == "ACK":
            w.acks.append(rest)
        elif word == "UNREG":
            w.unregs.append(rest)
        elif word == "DONE":
            w.done = json.loads(rest) if rest else {}
            return
        else:
            raise CrowdFailure(f"{w.name}: unexpected line {text!r}")
        if w.kill_at is not None and not w.killed and len(w.acks) + len(w.unregs) >= w.kill_at:
            os.kill(w.pid, signal.SIGKILL)
            w.killed = True

    def request(self, w: Worker, command: str) -> str:
        assert w.proc is not None and w.proc.stdin is not None
        before = len(w.replies)
        w.proc.stdin.write((command + "\n").encode("utf-8"))
        w.proc.stdin.flush()
        self.pump(lambda: len(w.replies) > before or w.eof)
        if len(w.replies) <= before:
            raise CrowdFailure(f"{w.name} exited instead of answering {command!r}: {w.describe()}")
        return w.replies[before]

    def kill_all(self) -> None:
        for w in self.workers:
            if w.proc and w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()

    # ---- the run ----------------------------------------------------------------------------

    def run(self) -> None:
        t0 = time.monotonic()
        self.plan()
        self.start()
        victims = [w for w in self.workers if w.kill_at is not None]
        survivors = [w for w in self.workers if w.kill_at is None]
        self.pump(lambda: all(w.done is not None for w in survivors) and all(w.eof for w in victims))
        self.timings["crowd run (all processes at once)"] = time.monotonic() - t0
        t1 = time.monotonic()

        for w in victims:
            if not w.killed:
                raise CrowdFailure(f"{w.name} finished before it could be killed: {w.describe()}")
            if w.proc.returncode != -signal.SIGKILL:
                raise CrowdFailure(f"{w.name} was to die of SIGKILL, exit status {w.proc.returncode}")
        for w in survivors:
            n = w.iterations
            want = [f"{w.name}-{i}" for i in range(n)]
            if w.acks != want or w.unregs != want[1::2]:
                raise CrowdFailure(f"{w.name} did not acknowledge every operation in order: {w.describe()}")

        readers = {}
        for lang in ("py", "node", "go"):
            alive = [w for w in survivors if w.lang == lang]
            if not alive:
                raise CrowdFailure(f"no {lang} worker survived to read")
            readers[lang] = alive[0]

        # Expected: every survivor's acknowledged, not unregistered entry, as its writer left it.
        expected: Dict[str, Dict[str, Any]] = {}
        for w in survivors:
            for i in range(0, w.iterations, 2):
                expected[f"{w.name}-{i}"] = expected_entry(w, i)

        # One more health update per language, written after every kill (so any write that
        # follows the deaths has pruned them) and read back from the other languages below.
        for lang, r in readers.items():
            id = f"{r.name}-0"
            message = f"final check by {lang} \u2713"
            reply = self.request(r, f"HEALTH {id} DOWN {message}")
            if reply != "OK":
                raise CrowdFailure(f"{r.name}: HEALTH {id}: {reply}")
            expected[id]["health"] = {"status": "DOWN", "message": message}

        # The file itself.
        text = self.registry.read_text(encoding="utf-8")
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise CrowdFailure(f"{self.registry} does not parse: {e}")
        schema = subprocess.run([sys.executable, str(VALIDATE), str(SCHEMA), str(self.registry)],
                                capture_output=True, text=True)
        if schema.returncode != 0:
            raise CrowdFailure(f"{self.registry} does not validate against the schema:\n{schema.stderr}{schema.stdout}")
        on_disk = {e["id"]: e for e in doc["servers"]}
        if len(on_disk) != len(doc["servers"]):
            raise CrowdFailure("duplicate ids in the file")
        missing = sorted(set(expected) - set(on_disk))
        extra = sorted(set(on_disk) - set(expected))
        if missing or extra:
            raise CrowdFailure(f"file holds {len(on_disk)} entries, expected {len(expected)}; "
                               f"missing (acknowledged, lost) {missing[:20]}{'...' if len(missing) > 20 else ''}; "
                               f"extra (unregistered or dead) {extra[:20]}{'...' if len(extra) > 20 else ''}")
        victim_pids = {w.pid for w in victims}
        for id, want in expected.items():
            got = project(on_disk[id])
            last_check = got["health"].pop("lastCheck", None) if isinstance(got["health"], dict) else None
            if canonical(got) != canonical(want) or not isinstance(last_check, str):
                raise CrowdFailure(f"{id} in the file:\n  got  {canonical(got)}\n  want {canonical(want)} (+ lastCheck)")
            if got["pid"] in victim_pids:
                raise CrowdFailure(f"{id} carries a killed process's pid")

        # Every acknowledged write is counted in the generation; a lost update would lower it.
        acknowledged = sum(2 * w.iterations + w.iterations // 2 for w in survivors)
        acknowledged += len(readers)  # the HEALTH updates above
        acknowledged += sum(len(w.acks) + len(w.unregs) + w.health_done for w in victims)
        slack = 2 * len(victims)  # a victim's last writes may be durable but unacknowledged
        generation = doc.get("generation")
        if not isinstance(generation, int) or not acknowledged <= generation <= acknowledged + slack:
            raise CrowdFailure(f"generation {generation}, expected {acknowledged}..{acknowledged + slack} "
                               f"(one per acknowledged write)")

        # Each language lists exactly the expected set.
        for lang, r in readers.items():
            reply = self.request(r, "LIST")
            word, _, payload = reply.partition(" ")
            listed = json.loads(payload) if word == "LISTED" else None
            if listed is None or set(listed) != set(expected) or len(listed) != len(expected):
                got = set(listed or [])
                raise CrowdFailure(f"{lang} lists {len(got)} entries, expected {len(expected)}: "
                                   f"missing {sorted(set(expected) - got)[:10]}, extra {sorted(got - set(expected))[:10]} ({reply[:200]})")

        # Cross-language reads: every reader gets entries written in every language.
        samples: List[str] = []
        by_lang: Dict[str, List[Worker]] = {}
        for w in survivors:
            by_lang.setdefault(w.lang, []).append(w)
        for lang, group in by_lang.items():
            if lang in readers:
                samples.append(f"{readers[lang].name}-0")  # health set in phase 2 by its writer
            other = group[-1]
            samples.append(f"{other.name}-{(other.iterations - 1) // 2 * 2}")  # its last kept
        compared = 0
        for id in samples:
            views = {}
            for lang, r in readers.items():
                reply = self.request(r, f"GET {id}")
                word, got_id, payload = (reply.split(" ", 2) + ["", ""])[:3]
                if word != "GOT" or got_id != id:
                    raise CrowdFailure(f"{lang} GET {id}: {reply}")
                views[lang] = project(json.loads(payload))
                compared += 1
            first = canonical(views["py"])
            for lang, view in views.items():
                if canonical(view) != first:
                    raise CrowdFailure(f"{id} differs between languages:\n" + "\n".join(
                        f"  {l:5} {canonical(v)}" for l, v in views.items()))
            if canonical(views["py"]) != canonical(project(on_disk[id])):
                raise CrowdFailure(f"{id} as read by the bindings differs from the file:\n"
                                   f"  bindings {first}\n  file     {canonical(project(on_disk[id]))}")

        # Killed processes' entries are found from no language.
        for w in victims:
            kept_acked = [a for a in w.acks if int(a.rsplit("-", 1)[1]) % 2 == 0]
            if not kept_acked:
                continue
            for lang, r in readers.items():
                reply = self.request(r, f"GET {kept_acked[-1]}")
                parts = reply.split(" ", 3)
                if parts[0] != "ERR" or int(parts[2]) != NOT_FOUND:
                    raise CrowdFailure(f"{lang} GET {kept_acked[-1]} of killed {w.name}: {reply[:300]}")
        self.timings["checks"] = time.monotonic() - t1
        t2 = time.monotonic()

        # Survivors close their handles: their lease entries go with them.
        for w in survivors:
            w.proc.stdin.close()
        self.pump(lambda: all(w.eof for w in survivors))
        for w in survivors:
            if w.proc.returncode != 0:
                raise CrowdFailure(f"{w.name} exited with {w.proc.returncode}: {w.describe()}")
        after = json.loads(self.registry.read_text(encoding="utf-8"))
        if after["servers"]:
            raise CrowdFailure(f"{len(after['servers'])} entries left after every survivor closed, "
                               f"e.g. {[e['id'] for e in after['servers'][:10]]}")
        self.timings["closing"] = time.monotonic() - t2
        self.timings["total"] = time.monotonic() - t0

        ops: Dict[str, int] = {}
        for w in survivors:
            for k, v in (w.done or {}).items():
                ops[k] = ops.get(k, 0) + v
        langs = sorted({w.lang for w in self.workers}, key=lambda l: (l not in LANG_INDEX, LANG_INDEX.get(l, 9)))
        print("crowd: processes " + ", ".join(
            f"{sum(w.lang == l for w in self.workers)} {l}" for l in langs)
            + f" = {len(self.workers)}; killed with SIGKILL: "
            + ", ".join(f"{w.name} after {len(w.acks) + len(w.unregs)} acks" for w in victims))
        print(f"crowd: {self.args.iterations} iterations per process ({self.args.swift_iterations} for Swift); "
              f"acknowledged registrations "
              f"{sum(len(w.acks) for w in self.workers)}, unregistrations {sum(len(w.unregs) for w in self.workers)}; "
              f"survivors' calls {json.dumps(ops, sort_keys=True)} (Swift workers report none); "
              f"file generation {generation} (acknowledged writes {acknowledged})")
        print(f"crowd: {len(expected)} entries remained, exactly the survivors' acknowledged ones; "
              f"{compared} cross-language reads of {len(samples)} entries identical; seed {self.args.seed}")
        print("crowd: timing " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--go-worker", required=True, help="the built tests/crowd/go binary")
    p.add_argument("--node", default=shutil.which("node") or "node")
    p.add_argument("--swift-worker", help="Swift's registry-crowd-worker binary (optional)")
    p.add_argument("--per-lang", type=int, default=8, help="processes per language (default 8)")
    p.add_argument("--swift-workers", type=int, default=2)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--kills-per-lang", type=int, default=2)
    p.add_argument("--swift-kills", type=int, default=1)
    p.add_argument("--swift-iterations", type=int, default=50)
    p.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "big"))
    p.add_argument("--timeout", type=float, default=300, help="overall deadline, seconds")
    args = p.parse_args()
    if args.per_lang < args.kills_per_lang + 1 or min(args.iterations, args.swift_iterations) < 4:
        p.error("need a survivor per language and at least 4 iterations")
    crowd = Crowd(args)
    try:
        crowd.run()
    except CrowdFailure as e:
        print(f"crowd: FAILED (seed {args.seed}; registry kept in {crowd.tmp}): {e}", file=sys.stderr)
        crowd.kill_all()
        return 1
    except BaseException:
        crowd.kill_all()
        print(f"crowd: registry kept in {crowd.tmp}", file=sys.stderr)
        raise
    shutil.rmtree(crowd.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
