#!/usr/bin/env python3
"""End-to-end tests of the peer-registry CLI: runs the built binary as a script would.

Every subcommand, the exit codes docs/CLI.md promises, bad arguments, a corrupt registry and its
repair, watch streaming, and serve (HTTP, Host check, SSE, clean stop on SIGTERM).

    python3 tests/cli/test_cli.py [--bin PATH] [unittest options]

PATH defaults to $PEER_REGISTRY_BIN, else .build/debug/peer-registry. Only the standard library
is used. Every wait is bounded.
"""
import argparse
import fcntl
import http.client
import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PEER_REGISTRY_BIN", os.path.join(ROOT, ".build", "debug", "peer-registry"))

# docs/CLI.md
OK, EINVAL, ENOTFOUND, EEXISTS, ECORRUPT, EIO, EPERM, ETIMEOUT, EAMBIGUOUS, ELIMIT = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
USAGE = 64


def wait_until(condition, timeout=5.0, interval=0.02):
    """Polls `condition` until it is true or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


class CLITestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="prk-cli-")
        self.registry = os.path.join(self.dir, "reg", "servers.json")
        self.children = []

    def tearDown(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
            for stream in (child.stdout, child.stderr, child.stdin):
                if stream:
                    stream.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_cli(self, *args, registry=True, input=None, env=None, timeout=30):
        argv = [BIN, *args]
        if registry:
            argv += ["--registry", self.registry]
        environment = dict(os.environ)
        environment.pop("PEER_REGISTRY_PATH", None)
        environment.update(env or {})
        return subprocess.run(argv, capture_output=True, text=True, input=input, env=environment, timeout=timeout)

    def ok(self, *args, **kw):
        result = self.run_cli(*args, **kw)
        self.assertEqual(result.returncode, OK, f"{args}: {result.stderr}")
        self.assertEqual(result.stderr, "", f"{args}: nothing on stderr when all is well")
        return result.stdout

    def fails(self, code, *args, message=None, **kw):
        result = self.run_cli(*args, **kw)
        self.assertEqual(result.returncode, code, f"{args}: rc {result.returncode}, stderr {result.stderr!r}")
        self.assertTrue(result.stderr.startswith("peer-registry: "), f"{args}: stderr {result.stderr!r}")
        if message:
            self.assertIn(message, result.stderr)
        return result

    def register(self, *args, **kw):
        return json.loads(self.ok("register", *args, **kw))

    def listing(self, *args):
        return json.loads(self.ok("list", "--json", *args))

    def ids(self, *args):
        return [s["id"] for s in self.listing(*args)["servers"]]

    def spawn(self, argv, **kw):
        child = subprocess.Popen(argv, **kw)
        self.children.append(child)
        return child


class HelpAndUsage(CLITestCase):
    def test_help_lists_every_subcommand(self):
        out = self.ok("--help", registry=False)
        for name in ["list", "get", "resolve", "register", "unregister", "health", "heartbeat", "prune", "repair", "watch", "serve", "mcp"]:
            self.assertIn(f"  {name}", out)
        self.assertIn("--registry", self.ok("list", "--help", registry=False))
        self.assertEqual(self.ok("--version", registry=False).strip(), "0.2.0")

    def test_every_subcommand_accepts_registry(self):
        for name in ["list", "get", "resolve", "register", "unregister", "health", "heartbeat", "prune", "repair", "watch", "serve", "mcp"]:
            self.assertIn("--registry <path>", self.ok(name, "--help", registry=False), name)

    def test_usage_errors_exit_64(self):
        cases = [
            (["frobnicate"], "Unexpected argument"),
            (["get"], "Missing expected argument '<id>'"),
            (["register", "--url", "http://127.0.0.1:1/"], "missing --id"),
            (["register", "--id", "a", "--url", "http://x:1/", "--pid", "1", "--ttl", "5"], "choose one of --pid, --ttl and --static"),
            (["register", "--id", "a", "--url", "http://x:1/", "--ttl", "0"], "--ttl 0"),
            (["register", "--id", "a", "--url", "http://x:1/", "--transport", "pigeon"], "--transport pigeon"),
            (["register", "--file", "entry.json", "--id", "a"], "--file gives the whole entry"),
            (["list", "--transport", "pigeon"], "--transport pigeon"),
            (["list", "--status", "FINE"], "--status FINE"),
            (["health", "a", "FINE"], 'status "FINE"'),
            (["resolve", "widget", "x"], "widget"),
            (["serve", "--port", "70000"], "--port 70000"),
            (["serve", "--allow-origin", "example.com"], "--allow-origin example.com"),
            (["watch", "--count", "0"], "--count 0"),
            (["list", "--registry"], "Missing value for '--registry"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                result = self.fails(USAGE, *args, message=message, registry=args[0] != "frobnicate")
                self.assertEqual(result.stdout, "")


class RegisterAndRead(CLITestCase):
    def test_empty_registry(self):
        self.assertIn("no live servers", self.ok("list"))
        self.assertEqual(self.listing(), {"generation": 0, "servers": []})

    def test_register_from_flags_is_static_by_default(self):
        stored = self.register("--id", "journey", "--name", "Journey", "--url", "http://127.0.0.1:8080/mcp",
                               "--tool", "findTrips", "--tool", "shared", "--resource", "resource://journey/",
                               "--prompt", "plan-trip", "--metadata", '{"team":"travel","v":2}')
        self.assertEqual(stored["liveness"], "none")
        self.assertEqual(stored["port"], 8080)
        self.assertEqual(stored["transport"], "http")
        self.assertEqual(stored["capabilities"], {"tools": ["findTrips", "shared"], "resources": ["resource://journey/"], "prompts": ["plan-trip"]})
        self.assertEqual(stored["metadata"], {"team": "travel", "v": 2})
        self.assertIn("startedAt", stored)
        # It outlives the command that registered it.
        self.assertEqual(self.ids(), ["journey"])
        self.assertEqual(json.loads(self.ok("get", "journey")), stored)
        compact = self.ok("get", "journey", "--compact")
        self.assertEqual(compact.count("\n"), 1)
        self.assertEqual(json.loads(compact), stored)
        self.assertEqual(self.listing()["servers"], [stored])

    def test_list_table(self):
        self.register("--id", "web", "--url", "http://127.0.0.1:8080/mcp", "--tool", "a", "--tool", "b")
        self.register("--id", "sock", "--url", "ws://127.0.0.1:1234", "--ttl", "300")
        lines = self.ok("list").splitlines()
        self.assertEqual(lines[0].split(), ["ID", "TRANSPORT", "URL", "HEALTH", "LIVENESS", "PID", "TOOLS"])
        self.assertEqual(lines[1].split(), ["web", "http", "http://127.0.0.1:8080/mcp", "UNKNOWN", "static", "-", "2"])
        self.assertEqual(lines[2].split(), ["sock", "ws", "ws://127.0.0.1:1234", "UNKNOWN", "ttl", "300s", "-", "0"])
        self.assertEqual(len(lines), 3)

    def test_list_filters(self):
        self.register("--id", "a", "--url", "http://127.0.0.1:1/", "--tool", "x")
        self.register("--id", "b", "--url", "ws://127.0.0.1:2/", "--tool", "x", "--tool", "y", "--resource", "res://b/", "--prompt", "p")
        self.ok("health", "b", "HEALTHY")
        self.assertEqual(self.ids("--healthy"), ["b"])
        self.assertEqual(self.ids("--status", "unknown"), ["a"])
        self.assertEqual(self.ids("--transport", "ws"), ["b"])
        self.assertEqual(self.ids("--tool", "x"), ["a", "b"])
        self.assertEqual(self.ids("--tool", "y"), ["b"])
        self.assertEqual(self.ids("--resource", "res://b/1"), ["b"])
        self.assertEqual(self.ids("--prompt", "p"), ["b"])
        self.assertEqual(self.ids("--tool", "x", "--transport", "http"), ["a"])
        self.assertIn("no live servers", self.ok("list", "--tool", "nobody"))

    def test_an_existing_id_is_refused_unless_replace(self):
        self.register("--id", "dup", "--url", "http://127.0.0.1:1/")
        self.fails(EEXISTS, "register", "--id", "dup", "--url", "http://127.0.0.1:2/", message="--replace")
        self.assertEqual(json.loads(self.ok("get", "dup"))["url"], "http://127.0.0.1:1/")
        self.register("--id", "dup", "--url", "http://127.0.0.1:2/", "--replace")
        self.assertEqual(json.loads(self.ok("get", "dup"))["url"], "http://127.0.0.1:2/")

    def test_register_from_a_file_and_stdin(self):
        path = os.path.join(self.dir, "entry.json")
        with open(path, "w") as f:
            json.dump({"id": "from-file", "url": "ws://127.0.0.1:1300", "capabilities": {"tools": ["t"]}, "custom": {"kept": True}}, f)
        stored = self.register("--file", path)
        self.assertEqual(stored["liveness"], "none")  # no liveness in the file: static
        self.assertEqual(stored["custom"], {"kept": True})  # unknown fields survive
        stored = self.register("--file", "-", input=json.dumps({"id": "from-stdin", "url": "http://127.0.0.1:1301/", "liveness": "ttl", "ttlSeconds": 60}))
        self.assertEqual((stored["liveness"], stored["ttlSeconds"]), ("ttl", 60))
        # A liveness flag overrides the file's.
        stored = self.register("--file", path, "--ttl", "90", "--replace")
        self.assertEqual((stored["liveness"], stored["ttlSeconds"]), ("ttl", 90))
        self.assertEqual(sorted(self.ids()), ["from-file", "from-stdin"])

    def test_lease_liveness_is_refused(self):
        path = os.path.join(self.dir, "lease.json")
        with open(path, "w") as f:
            json.dump({"id": "leased", "url": "http://127.0.0.1:1/", "liveness": "lease"}, f)
        self.fails(USAGE, "register", "--file", path, message="--pid PID, --ttl SECONDS or --static")
        self.assertEqual(self.ids(), [])
        # Overriding it is fine.
        self.assertEqual(self.register("--file", path, "--static")["liveness"], "none")

    def test_bad_entries(self):
        self.fails(EINVAL, "register", "--id", "bad/id", "--url", "http://127.0.0.1:1/", message="field \"id\"")
        self.fails(EINVAL, "register", "--id", "nourl", message="field \"url\"")
        self.fails(EINVAL, "register", "--id", "a", "--url", "not a url", message="field \"url\"")
        self.fails(EINVAL, "register", "--id", "a", "--url", "http://127.0.0.1:1/", "--metadata", "{nope", message="--metadata")
        self.fails(ELIMIT, "register", "--id", "a", "--url", "http://127.0.0.1:1/", "--metadata", json.dumps("x" * 5000))
        bad = os.path.join(self.dir, "bad.json")
        with open(bad, "w") as f:
            f.write("[1, 2")
        self.fails(EINVAL, "register", "--file", bad, message=f"--file {bad}")
        with open(bad, "w") as f:
            f.write("[1, 2]")
        self.fails(EINVAL, "register", "--file", bad, message="must be a JSON object")
        self.fails(EIO, "register", "--file", os.path.join(self.dir, "missing.json"), message="cannot read")
        self.fails(EINVAL, "register", "--id", "p", "--url", "http://127.0.0.1:1/", "--pid", "999999999", message="not running")
        self.assertEqual(self.ids(), [])
        # A stdio server needs no URL.
        self.assertEqual(self.register("--id", "local", "--transport", "stdio")["transport"], "stdio")

    def test_get_and_unregister_missing(self):
        self.fails(ENOTFOUND, "get", "nobody", message='"nobody"')
        self.fails(ENOTFOUND, "unregister", "nobody")
        self.fails(ENOTFOUND, "health", "nobody", "DOWN")
        self.fails(ENOTFOUND, "heartbeat", "nobody")

    def test_unregister(self):
        self.register("--id", "gone", "--url", "http://127.0.0.1:1/")
        self.assertEqual(self.ok("unregister", "gone"), "")
        self.assertEqual(self.ids(), [])
        self.fails(ENOTFOUND, "unregister", "gone")

    def test_registry_flag_wins_over_the_environment(self):
        elsewhere = os.path.join(self.dir, "env", "servers.json")
        self.register("--id", "here", "--url", "http://127.0.0.1:1/", env={"PEER_REGISTRY_PATH": elsewhere})
        self.assertEqual(self.ids(), ["here"])
        self.assertFalse(os.path.exists(elsewhere))
        # Without --registry, the environment names the file.
        result = self.run_cli("list", "--json", registry=False, env={"PEER_REGISTRY_PATH": self.registry})
        self.assertEqual([s["id"] for s in json.loads(result.stdout)["servers"]], ["here"])


class ResolveAndHealth(CLITestCase):
    def setUp(self):
        super().setUp()
        self.register("--id", "a", "--url", "http://127.0.0.1:1/", "--tool", "shared", "--tool", "only-a",
                      "--resource", "res://data/", "--prompt", "greet")
        self.register("--id", "b", "--url", "http://127.0.0.1:2/", "--tool", "shared", "--resource", "res://data/deep/")

    def resolve(self, kind, name):
        return json.loads(self.ok("resolve", kind, name))["id"]

    def test_resolve(self):
        self.assertEqual(self.resolve("tool", "only-a"), "a")
        self.assertEqual(self.resolve("tool", "b.shared"), "b")
        self.assertEqual(self.resolve("resource", "res://data/deep/x"), "b")
        self.assertEqual(self.resolve("resource", "res://data/x"), "a")
        self.assertEqual(self.resolve("prompt", "greet"), "a")
        self.fails(ENOTFOUND, "resolve", "tool", "nobody")
        self.fails(ENOTFOUND, "resolve", "prompt", "nobody")
        result = self.fails(EAMBIGUOUS, "resolve", "tool", "shared")
        self.assertIn("a, b", result.stderr)

    def test_health_changes_resolution(self):
        self.assertEqual(self.ok("health", "a", "healthy"), "")  # any case
        self.assertEqual(self.resolve("tool", "shared"), "a")
        self.ok("health", "a", "DOWN", "disk full")
        entry = json.loads(self.ok("get", "a"))
        self.assertEqual(entry["health"]["status"], "DOWN")
        self.assertEqual(entry["health"]["message"], "disk full")
        self.assertEqual(self.resolve("tool", "shared"), "b")  # DOWN never resolves
        self.fails(ENOTFOUND, "resolve", "tool", "only-a")
        self.assertIn("DOWN", self.ok("list"))


class Liveness(CLITestCase):
    def test_pid_liveness_follows_the_process(self):
        child = self.spawn(["sleep", "60"])
        stored = self.register("--id", "worker", "--url", "ws://127.0.0.1:1400", "--pid", str(child.pid))
        self.assertEqual((stored["liveness"], stored["pid"]), ("pid", child.pid))
        self.assertEqual(self.ids(), ["worker"])
        child.kill()
        child.wait(timeout=10)
        self.assertEqual(self.ids(), [])  # dead entries are never listed
        self.assertEqual(json.loads(self.ok("prune", "--json")), {"removed": 1})
        self.assertEqual(self.ok("prune"), "removed 0 dead entries\n")

    def test_ttl_and_heartbeat(self):
        self.register("--id", "beat", "--url", "ws://127.0.0.1:1401", "--ttl", "1")
        self.assertEqual(self.ok("heartbeat", "beat"), "")
        self.assertTrue(wait_until(lambda: self.ids() == [], timeout=5), "a ttl entry expires")
        self.fails(ENOTFOUND, "heartbeat", "beat", message="beat")


class CorruptRegistry(CLITestCase):
    def corrupt(self, text="{\"servers\": [ oops"):
        os.makedirs(os.path.dirname(self.registry), mode=0o700, exist_ok=True)
        fd = os.open(self.registry, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, text.encode())
        os.close(fd)

    def test_every_command_reports_it_and_repair_moves_it_aside(self):
        self.register("--id", "x", "--url", "http://127.0.0.1:1/")
        self.corrupt()
        for args in (["list"], ["list", "--json"], ["get", "x"], ["resolve", "tool", "t"], ["prune"],
                     ["register", "--id", "y", "--url", "http://127.0.0.1:2/"], ["unregister", "x"], ["health", "x", "DOWN"]):
            with self.subTest(args=args):
                result = self.fails(ECORRUPT, *args, message=self.registry)
                self.assertEqual(result.stdout, "")
        out = self.ok("repair")
        self.assertIn("moved the unreadable registry to ", out)
        aside = out.split("moved the unreadable registry to ", 1)[1].split(";", 1)[0]
        self.assertTrue(os.path.basename(aside).startswith("servers.json.corrupt-"), aside)
        with open(aside) as f:
            self.assertEqual(f.read(), "{\"servers\": [ oops")  # nothing lost without a trace
        self.assertEqual(self.ids(), [])
        self.register("--id", "y", "--url", "http://127.0.0.1:2/")
        self.assertEqual(self.ok("repair"), "the registry is readable: nothing to repair\n")
        self.assertEqual(json.loads(self.ok("repair", "--json")), {"movedTo": None})

    def test_repair_json(self):
        self.corrupt("not json at all")
        moved = json.loads(self.ok("repair", "--json"))["movedTo"]
        self.assertTrue(os.path.exists(moved))


class Safety(CLITestCase):
    def test_an_unsafe_directory_is_refused(self):
        os.makedirs(os.path.dirname(self.registry))
        os.chmod(os.path.dirname(self.registry), 0o777)
        result = self.fails(EPERM, "list")
        self.assertIn("chmod", result.stderr)

    def test_a_held_lock_times_out(self):
        self.register("--id", "x", "--url", "http://127.0.0.1:1/")
        with open(self.registry + ".lock", "r+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.fails(ETIMEOUT, "register", "--id", "y", "--url", "http://127.0.0.1:2/",
                       env={"PEER_REGISTRY_LOCK_TIMEOUT_MS": "200"})
            # Readers take no lock.
            self.assertEqual(self.ids(), ["x"])


class Watch(CLITestCase):
    def start_watch(self, *args):
        child = self.spawn([BIN, "watch", "--registry", self.registry, *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        return child

    def read_line(self, child, timeout=10):
        ready, _, _ = select.select([child.stdout], [], [], timeout)
        self.assertTrue(ready, f"no line from watch within {timeout} s")
        line = child.stdout.readline()
        self.assertTrue(line, "watch ended early: " + (child.stderr.read() if child.poll() is not None else ""))
        return line

    def test_json_events_as_they_happen(self):
        self.register("--id", "before", "--url", "http://127.0.0.1:1/")
        child = self.start_watch("--json", "--initial", "--count", "3")
        initial = json.loads(self.read_line(child))
        self.assertEqual([e["id"] for e in initial["added"]], ["before"])
        self.assertEqual((initial["removed"], initial["changed"]), ([], []))
        self.register("--id", "late", "--url", "ws://127.0.0.1:1500")
        added = json.loads(self.read_line(child))
        self.assertEqual([e["id"] for e in added["added"]], ["late"])
        self.assertGreater(added["generation"], initial["generation"])
        self.ok("health", "late", "DEGRADED", "slow")
        changed = json.loads(self.read_line(child))
        self.assertEqual(changed["changed"][0]["health"], {"status": "DEGRADED", "message": "slow", "lastCheck": changed["changed"][0]["health"]["lastCheck"]})
        self.ok("unregister", "before")
        removed = json.loads(self.read_line(child))
        self.assertEqual([e["id"] for e in removed["removed"]], ["before"])
        self.assertEqual(child.wait(timeout=10), OK)  # --count 3 reached

    def test_human_lines(self):
        child = self.start_watch("--initial", "--count", "2")
        self.assertIn("(no live servers)", self.read_line(child))
        self.register("--id", "seen", "--url", "http://127.0.0.1:1600/")
        line = self.read_line(child)
        self.assertRegex(line, r"^\d\d:\d\d:\d\d\.\d{3}  gen \d+  \+ seen  http://127\.0\.0\.1:1600/  UNKNOWN  static$")
        self.ok("health", "seen", "HEALTHY")
        self.assertIn("~ seen", self.read_line(child))
        self.assertEqual(child.wait(timeout=10), OK)

    def test_a_process_death_shows_up(self):
        worker = self.spawn(["sleep", "60"])
        self.register("--id", "mortal", "--url", "ws://127.0.0.1:1700", "--pid", str(worker.pid))
        child = self.start_watch("--json", "--initial", "--count", "1")
        self.read_line(child)
        worker.kill()
        event = json.loads(self.read_line(child))
        self.assertEqual([e["id"] for e in event["removed"]], ["mortal"])

    def test_watch_stops_with_the_corrupt_code(self):
        child = self.start_watch("--json", "--initial")
        self.read_line(child)
        CorruptRegistry.corrupt(self)
        self.assertEqual(child.wait(timeout=10), ECORRUPT)
        self.assertIn("peer-registry: ", child.stderr.read())


class Serve(CLITestCase):
    def start_serve(self, *args):
        child = self.spawn([BIN, "serve", "--registry", self.registry, "--port", "0", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([child.stdout], [], [], 30)
        self.assertTrue(ready, "serve printed no URL within 30 s")
        url = child.stdout.readline().strip()
        self.assertRegex(url, r"^http://127\.0\.0\.1:\d+/\?token=[0-9a-f]{64}$")
        base, self.token = url.split("?token=")
        return child, int(base.rsplit(":", 1)[1].rstrip("/"))

    def get(self, port, path, host=None, headers=None, token=True):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{port}")
        if token:
            connection.putheader("Authorization", f"Bearer {self.token}")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
        return response.status, dict(response.getheaders()), body

    def test_serve_answers_and_stops_cleanly(self):
        self.register("--id", "served", "--url", "http://127.0.0.1:8080/mcp", "--tool", "t")
        child, port = self.start_serve()
        status, _, body = self.get(port, "/healthz")
        self.assertEqual(status, 200)
        self.assertTrue(json.loads(body)["ok"])
        status, _, body = self.get(port, "/servers")
        self.assertEqual([s["id"] for s in json.loads(body)["servers"]], ["served"])
        status, _, body = self.get(port, "/registry")
        self.assertEqual(json.loads(body)["servers"][0]["port"], 8080)
        self.assertEqual(self.get(port, "/resolve?tool=t")[0], 200)
        self.assertEqual(self.get(port, "/servers", host=f"evil.example:{port}")[0], 403)
        self.assertEqual(self.get(port, "/servers", headers={"Origin": "https://evil.example"})[0], 403)
        status, headers, _ = self.get(port, "/servers", headers={"Origin": "http://localhost:5173"})
        self.assertEqual((status, headers.get("Access-Control-Allow-Origin")), (200, "http://localhost:5173"))
        status, headers, body = self.get(port, "/")
        self.assertEqual(status, 200)
        self.assertIn('<script type="module" src="/status.js">', body)  # the status page, not the fallback
        self.assertEqual(self.get(port, "/status.js")[0], 200)

        # An open SSE stream sees a registration, and does not hold up SIGTERM.
        sse = socket.create_connection(("127.0.0.1", port), timeout=10)
        sse.sendall(f"GET /events?token={self.token} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
        received = b""
        deadline = time.monotonic() + 10
        while b"event: state" not in received and time.monotonic() < deadline:
            received += sse.recv(65536)
        self.assertIn(b"event: state", received)
        self.register("--id", "late", "--url", "ws://127.0.0.1:1800")
        while b'"id":"late"' not in received and time.monotonic() < deadline:
            received += sse.recv(65536)
        self.assertIn(b"event: change", received)
        self.assertIn(b'"id":"late"', received)
        child.send_signal(signal.SIGTERM)
        self.assertEqual(child.wait(timeout=10), OK)
        sse.close()

    def test_a_busy_port_is_an_io_error(self):
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        try:
            self.fails(EIO, "serve", "--port", str(port), message=f"cannot listen on 127.0.0.1:{port}", timeout=30)
        finally:
            holder.close()

    def test_allow_origin(self):
        child, port = self.start_serve("--allow-origin", "https://app.example.com")
        status, headers, _ = self.get(port, "/servers", headers={"Origin": "https://app.example.com"})
        self.assertEqual((status, headers.get("Access-Control-Allow-Origin")), (200, "https://app.example.com"))
        self.assertEqual(self.get(port, "/servers", headers={"Origin": "https://other.example.com"})[0], 403)
        child.send_signal(signal.SIGINT)
        self.assertEqual(child.wait(timeout=10), OK)


def main():
    global BIN
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--bin", default=BIN)
    args, rest = parser.parse_known_args()
    BIN = os.path.abspath(args.bin)
    if not os.access(BIN, os.X_OK):
        sys.exit(f"test_cli.py: no peer-registry binary at {BIN}: build it (swift build --product peer-registry) or pass --bin")
    print(f"test_cli.py: testing {BIN}", file=sys.stderr)
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
