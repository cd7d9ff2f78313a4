#!/usr/bin/env python3
"""The servers hold up (issue 13): `peer-registry serve`, `peer-registry mcp --http` and
`peer-registry mcp` (stdio) against hostile and careless clients, each over real sockets and real
processes — a second local user (uid 65534, through setpriv) where it matters.

    python3 tests/cli/test_servers.py [--bin PATH] [--before] [unittest options]

--before accepts a build from before the fixes (no token in the URL it prints), so that each test
runs up to its behaviour check against it: every test fails there.

Each test checks a behaviour that failed before the fix (the issue's reproductions). Bounds here
are behaviour checks with generous margins (a process that never exits, memory that grows with
clients); the figures themselves come from scripts/server-figures.py.
"""
import argparse
import http.client
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PEER_REGISTRY_BIN", os.path.join(ROOT, ".build", "debug", "peer-registry"))
NOBODY = 65534
SECRET = "Bearer sk-test-never-served-0123456789"
# --before: the binary is a build from before issue 13 (no token in its URL): each test then runs
# up to its behaviour check, to show that the check fails there.
BEFORE = False


def wait_until(condition, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def write_registry(path, servers, generation=1):
    """Writes servers.json as another writer would (0600, atomic rename)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".test-tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"version": 1, "generation": generation, "servers": servers}, f)
    os.rename(tmp, path)


def big_registry(path, target_bytes=7_800_000, generation=1):
    """A registry of about `target_bytes`: 150 static entries with 50 KB of metadata each."""
    per = target_bytes // 150
    servers = []
    for i in range(150):
        servers.append({
            "id": f"big-{i}", "url": f"http://127.0.0.1:{20000 + i}/mcp", "port": 20000 + i,
            "transport": "http", "liveness": "none", "startedAt": "2026-11-21T09:30:00.000Z",
            "metadata": {f"b{j}": "x" * 4000 for j in range(max(1, round((per - 300) / 4010)))},
        })
    write_registry(path, servers, generation)
    return os.path.getsize(path)


class ServerTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="prk-srv-")
        os.chmod(self.dir, 0o755)  # the second user may reach the port, never the registry
        self.registry = os.path.join(self.dir, "reg", "servers.json")
        self.children = []
        self.sockets = []

    def tearDown(self):
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
            for stream in (child.stdout, child.stderr, child.stdin):
                if stream:
                    stream.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args, input=None, registry=True, check=True, timeout=30, **kw):
        argv = [BIN, *args] + (["--registry", self.registry] if registry else [])
        result = subprocess.run(argv, capture_output=True, input=input, timeout=timeout, **kw)
        if check:
            self.assertEqual(result.returncode, 0, f"{args}: {result.stderr!r}")
        return result

    def spawn(self, argv, **kw):
        child = subprocess.Popen(argv, **kw)
        self.children.append(child)
        return child

    def start_serve(self, *args, preexec_fn=None):
        child = self.spawn([BIN, "serve", "--registry", self.registry, "--port", "0", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
        ready, _, _ = select.select([child.stdout], [], [], 30)
        self.assertTrue(ready, f"serve printed no URL within 30 s: {child.stderr.read() if child.poll() is not None else ''}")
        url = child.stdout.readline().strip()
        if not BEFORE:
            self.assertRegex(url, r"^http://127\.0\.0\.1:\d+/\?token=[0-9a-f]{64}$")
        base, _, token = url.partition("?token=")
        port = int(base.rsplit(":", 1)[1].rstrip("/"))
        return child, port, token

    def request(self, port, path, token=None, headers=None, method="GET", host=None, timeout=10):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        connection.putrequest(method, path, skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{port}")
        if token:
            connection.putheader("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    def sse(self, port, token, last_event_id=None, query=""):
        """An /events connection (query: more of its query string, say "&scope=cluster")."""
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sockets.append(s)
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        s.sendall(f"GET /events?token={token}{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode())
        return s

    def read_until(self, s, needle, timeout=10):
        received = b""
        deadline = time.monotonic() + timeout
        while needle not in received and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            received += chunk
        return received

    def register(self, id, **extra):
        entry = {"id": id, "url": f"http://127.0.0.1:{8000 + len(id)}/mcp", "liveness": "none", **extra}
        self.cli("register", "--file", "-", "--replace", input=json.dumps(entry).encode())


def as_nobody(argv, **kw):
    """Runs argv as uid/gid 65534 with no supplementary groups (setpriv, util-linux)."""
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise AssertionError("setpriv is missing: apt-get install -y util-linux")
    return subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=30, **kw)


class Auth(ServerTestCase):
    def test_another_local_user_cannot_read_the_registry(self):
        self.register("demo")
        child, port, token = self.start_serve()
        probe = ("import http.client,sys\n"
                 "c=http.client.HTTPConnection('127.0.0.1',int(sys.argv[1]),timeout=10)\n"
                 "c.request('GET',sys.argv[2]);r=c.getresponse();print(r.status);print(r.read().decode())\n")
        for path in ["/servers/demo", "/servers", "/events", "/registry", "/healthz", f"/servers?token={'0' * 64}"]:
            result = as_nobody([sys.executable, "-c", probe, str(port), path])
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(result.stdout.split("\n")[0], "401", f"{path}: {result.stdout}")
            self.assertNotIn("demo", result.stdout.split("\n", 1)[1])
        # The owner gets it with the token; the token file is the owner's alone.
        self.assertEqual(self.request(port, "/servers/demo", token)[0], 200)
        runtime = os.path.join(os.path.dirname(self.registry), "runtime", f"serve-{port}.json")
        with open(runtime) as f:
            self.assertEqual(json.load(f)["token"], token)
        self.assertEqual(os.stat(runtime).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.dirname(runtime)).st_mode & 0o777, 0o700)
        os.chmod(os.path.dirname(self.registry), 0o755)  # even with the directory open to all
        result = as_nobody([sys.executable, "-c", f"open({runtime!r}).read()"])
        self.assertNotEqual(result.returncode, 0, "uid 65534 read the token file")
        child.send_signal(signal.SIGTERM)
        self.assertEqual(child.wait(timeout=10), 0)
        self.assertFalse(os.path.exists(runtime), "the runtime file outlived the server")

    def test_the_page_gets_a_cookie_and_a_clean_address(self):
        self.register("demo")
        _, port, token = self.start_serve()
        status, headers, _ = self.request(port, f"/?token={token}")
        self.assertEqual(status, 303)
        self.assertEqual(headers["location"], "/")
        cookie = headers["set-cookie"]
        self.assertIn(f"peer-registry-token-{port}={token}", cookie)
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Strict", cookie)
        pair = cookie.split(";")[0]
        self.assertEqual(self.request(port, "/servers", headers={"Cookie": pair})[0], 200)
        self.assertEqual(self.request(port, "/servers", headers={"Cookie": f"peer-registry-token-{port}=wrong"})[0], 401)
        self.assertEqual(self.request(port, "/servers", headers={"Cookie": f"peer-registry-token-{port + 1}={token}"})[0], 401)
        self.assertEqual(self.request(port, "/servers", token="x" * 64)[0], 401)
        # The page shell itself holds no data and loads without the token.
        self.assertEqual(self.request(port, "/")[0], 200)
        self.assertEqual(self.request(port, "/status.js")[0], 200)

    def test_the_legacy_endpoint_opens_only_with_its_flag(self):
        self.register("demo", headers={"Authorization": SECRET})
        _, port, _ = self.start_serve()
        self.assertEqual(self.request(port, "/registry")[0], 401)
        _, port, _ = self.start_serve("--open-legacy-registry")
        status, _, body = self.request(port, "/registry")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["servers"][0]["id"], "demo")
        self.assertNotIn("sk-test", body)
        self.assertEqual(self.request(port, "/servers")[0], 401)

    def test_origin_null_needs_the_token(self):
        self.register("demo")
        # A sandboxed iframe of any web site sends Origin: null.
        result = self.cli("serve", "--port", "0", "--allow-origin", "null", "--open-legacy-registry", check=False)
        self.assertEqual(result.returncode, 64, result.stderr)
        self.assertIn(b"null", result.stderr)
        _, port, token = self.start_serve("--allow-origin", "null")
        self.assertEqual(self.request(port, "/servers", headers={"Origin": "null"})[0], 401)
        status, headers, _ = self.request(port, "/servers", token=token, headers={"Origin": "null"})
        self.assertEqual((status, headers.get("access-control-allow-origin")), (200, "null"))


class Secrets(ServerTestCase):
    def test_headers_are_never_served_or_printed_without_the_flag(self):
        self.register("secretive", headers={"Authorization": SECRET})
        with open(self.registry) as f:
            self.assertIn(SECRET, json.load(f)["servers"][0]["headers"]["Authorization"])
        child, port, token = self.start_serve("--open-legacy-registry")
        for path in ["/servers", "/servers/secretive", "/registry", "/resolve?tool=nothing"]:
            body = self.request(port, path, token)[2]
            self.assertNotIn("sk-test", body, path)
        s = self.sse(port, token)
        got = self.read_until(s, b"secretive")
        self.register("secretive", headers={"Authorization": SECRET + "2"}, name="changed")
        got += self.read_until(s, b"changed")
        self.assertIn(b"changed", got)
        self.assertNotIn(b"sk-test", got)
        for args in [("list",), ("list", "--json"), ("get", "secretive"), ("get", "secretive", "--compact")]:
            out = self.cli(*args).stdout
            self.assertNotIn(b"sk-test", out, args)
        # Nor over MCP: tools and resources.
        calls = [
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "instances/list"}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "servers/get", "arguments": {"id": "secretive"}}},
            {"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "registry://servers/secretive"}},
            {"jsonrpc": "2.0", "id": 4, "method": "resources/read", "params": {"uri": "registry://servers"}},
        ]
        mcp = self.cli("mcp", input="".join(json.dumps(c) + "\n" for c in calls).encode())
        self.assertGreaterEqual(mcp.stdout.count(b"secretive"), 4, mcp.stdout[:500])
        self.assertNotIn(b"sk-test", mcp.stdout)
        self.assertIn(b"sk-test", self.cli("list", "--json", "--show-secrets").stdout)
        self.assertIn(b"sk-test", self.cli("get", "secretive", "--show-secrets").stdout)
        watch = self.spawn([BIN, "watch", "--json", "--initial", "--count", "1", "--registry", self.registry],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = watch.stdout.readline()
        self.assertIn(b"secretive", first)
        self.register("secretive", headers={"Authorization": SECRET + "3"}, name="again")
        rest = watch.communicate(timeout=10)[0]
        self.assertIn(b"again", rest)
        self.assertNotIn(b"sk-test", first + rest)


class Connections(ServerTestCase):
    def test_idle_connections_cannot_exhaust_the_descriptors(self):
        self.register("demo")
        limit = 256

        def low_fd_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        child, port, token = self.start_serve(preexec_fn=low_fd_limit)
        idle = []
        for _ in range(limit + 150):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            idle.append(s)
            self.sockets.append(s)
        time.sleep(0.3)
        status, _, body = self.request(port, "/healthz", token)
        self.assertEqual(status, 200, body)
        health = json.loads(body)
        self.assertLessEqual(health["connections"], limit)
        self.assertLessEqual(health["maxConnections"], limit - 32)
        self.assertLess(fd_count(child.pid), limit)

    def test_a_half_sent_request_is_cut_off(self):
        _, port, token = self.start_serve("--request-timeout", "1")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sockets.append(s)
        s.sendall(b"GET /servers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        s.settimeout(10)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        self.assertEqual(data, b"", "the server answered half a request")
        self.assertLess(time.monotonic() - started, 8, "the half-sent request was held open")

    def test_closed_event_streams_free_their_descriptors_at_once(self):
        _, port, token = self.start_serve("--keep-alive", "3600")
        child = self.children[-1]
        s = self.sse(port, token)
        self.read_until(s, b"event: state")
        baseline = fd_count(child.pid)
        for _ in range(600):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(f"GET /events?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            c.recv(100)
            c.close()
        settled = wait_until(lambda: fd_count(child.pid) <= baseline + 10, timeout=10)
        self.assertTrue(settled, f"{fd_count(child.pid)} descriptors after 600 closed streams (baseline {baseline})")
        status, _, body = self.request(port, "/healthz", token)
        self.assertLessEqual(json.loads(body)["sseClients"], 2)


class Memory(ServerTestCase):
    def test_clients_that_do_not_read_cannot_pin_memory(self):
        size = big_registry(self.registry)
        self.assertGreater(size, 7_000_000)
        child, port, token = self.start_serve("--keep-alive", "3600")
        self.assertEqual(self.request(port, "/healthz", token)[0], 200)
        base = rss_kb(child.pid)
        for i in range(150):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            self.sockets.append(s)
            path = "/events" if i % 2 else "/servers"
            s.sendall(f"GET {path}?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        time.sleep(3)
        # Rewrites while they do not read: each is a new 7.8 MB state nobody takes.
        for generation in range(2, 12):
            big_registry(self.registry, generation=generation)
            time.sleep(0.3)
        time.sleep(2)
        grown = rss_kb(child.pid) - base
        self.assertLess(grown, 400_000, f"RSS grew by {grown // 1024} MB with 150 clients that do not read")
        self.assertEqual(self.request(port, "/healthz", token, timeout=30)[0], 200)


class Shutdown(ServerTestCase):
    def test_sigterm_ends_serve_with_stuck_clients_within_the_deadline(self):
        big_registry(self.registry, target_bytes=2_000_000)
        child, port, token = self.start_serve("--keep-alive", "3600", "--shutdown-deadline", "2")
        for _ in range(20):
            s = self.sse(port, token)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for generation in range(2, 6):
            big_registry(self.registry, target_bytes=2_000_000, generation=generation)
            time.sleep(0.3)
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        try:
            code = child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.fail("serve was still running 15 s after SIGTERM")
        self.assertEqual(code, 0)
        self.assertLess(time.monotonic() - started, 10)

    def test_sigterm_ends_mcp_http_with_stuck_clients(self):
        child, url, token = start_mcp_http(self, "--shutdown-deadline", "1")
        port = int(url.split(":")[2].split("/")[0])
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.sockets.append(s)
            s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{")
        child.send_signal(signal.SIGTERM)
        self.assertEqual(child.wait(timeout=15), 0)


class Resume(ServerTestCase):
    def test_an_event_id_from_before_a_restart_gets_the_full_state(self):
        holder = self.spawn(["sleep", "600"])
        self.cli("register", "--id", "mortal", "--url", "http://127.0.0.1:8401/mcp", "--pid", str(holder.pid))
        self.register("b")
        child, port, token = self.start_serve()
        s = self.sse(port, token)
        got = self.read_until(s, b'"mortal"')
        last_id = [line for line in got.decode().split("\n") if line.startswith("id: ")][-1][4:]
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=10)
        # While it is down, an entry dies without a write: the generation stays the same.
        generation = json.loads(self.cli("list", "--json").stdout)["generation"]
        holder.kill()
        holder.wait()
        self.assertEqual(json.loads(self.cli("list", "--json").stdout)["generation"], generation)
        child, port, token = self.start_serve()
        s = self.sse(port, token, last_event_id=last_id)
        got = self.read_until(s, b"event: state", timeout=5)
        self.assertIn(b"event: state", got, f"resumed with {last_id}: {got[-200:]!r}")
        self.assertNotIn(b"resumed at", got)
        got += self.read_until(s, b"\n\n", timeout=2)
        self.assertNotIn(b'"mortal"', got)


class ReplacedDirectory(ServerTestCase):
    def test_serve_follows_a_registry_directory_made_again(self):
        # Both event hubs (local and cluster scope) share one registry source: whichever notices
        # the new directory first reopens it, and the other must follow too (it once kept
        # reading the old directory, so one of the two streams saw nothing).
        self.register("old")
        child, port, token = self.start_serve()
        s = self.sse(port, token)
        cluster = self.sse(port, token, query="&scope=cluster")
        self.read_until(s, b'"old"')
        self.read_until(cluster, b'"old"')
        directory = os.path.dirname(self.registry)
        os.rename(directory, directory + ".moved")
        os.mkdir(directory, 0o700)
        self.register("new")
        got = self.read_until(s, b'"new"', timeout=10)
        self.assertIn(b'"new"', got)
        self.assertIn(b'"new"', self.read_until(cluster, b'"new"', timeout=10))
        status, _, body = self.request(port, "/servers", token)
        self.assertEqual([e["id"] for e in json.loads(body)["servers"]], ["new"])
        health = json.loads(self.request(port, "/healthz", token)[2])
        self.assertTrue(health["ok"])
        self.assertEqual(health["generation"], 1)
        self.register("newer")
        self.assertIn(b'"newer"', self.read_until(s, b'"newer"', timeout=10))
        self.assertIn(b'"newer"', self.read_until(cluster, b'"newer"', timeout=10))


def start_mcp_http(test, *args):
    child = test.spawn([BIN, "mcp", "--registry", test.registry, "--http", "0", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([child.stdout], [], [], 30)
    test.assertTrue(ready, "mcp --http printed no URL")
    url = child.stdout.readline().strip()
    if not BEFORE:
        test.assertRegex(url, r"^http://127\.0\.0\.1:\d+/mcp\?token=[0-9a-f]{64}$")
    return child, url, url.partition("?token=")[2]


INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})


class MCPHTTP(ServerTestCase):
    def post(self, port, body, token=None, headers=None, host=None):
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **(headers or {})}
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.putrequest("POST", "/mcp", skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{port}")
        if token:
            h["Authorization"] = f"Bearer {token}"
        h["Content-Length"] = str(len(body))
        for k, v in h.items():
            connection.putheader(k, v)
        connection.endheaders(body.encode())
        response = connection.getresponse()
        status, headers = response.status, {k.lower(): v for k, v in response.getheaders()}
        data = response.read(2000).decode(errors="replace")
        connection.close()
        return status, headers, data

    def test_initialize_floods_lock_nobody_out_and_need_the_token(self):
        _, url, token = start_mcp_http(self)
        port = int(url.split(":")[2].split("/")[0])
        # Without the token (any local process): refused, no session made.
        for _ in range(70):
            self.assertEqual(self.post(port, INITIALIZE)[0], 401)
        # With it, 70 sessions: the table is full at 64 and makes room.
        for i in range(70):
            status, headers, _ = self.post(port, INITIALIZE, token)
            self.assertEqual(status, 200, f"initialize #{i + 1}")
            self.assertIn("mcp-session-id", headers)
        # A Host that is not loopback is refused even without an Origin (DNS rebinding).
        self.assertEqual(self.post(port, INITIALIZE, token, host="evil.com")[0], 403)
        self.assertEqual(self.post(port, INITIALIZE, token, headers={"Origin": "https://evil.com"})[0], 403)


    def test_closed_event_streams_free_their_descriptors_at_once(self):
        child, url, token = start_mcp_http(self)
        port = int(url.split(":")[2].split("/")[0])
        baseline = fd_count(child.pid)
        for _ in range(120):
            _, headers, _ = self.post(port, INITIALIZE, token, headers={"MCP-Protocol-Version": "2025-06-18"})
            session = headers["mcp-session-id"]
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall((f"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                       f"Accept: text/event-stream\r\nMCP-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\n\r\n").encode())
            self.assertIn(b"200", s.recv(100))
            s.close()
        # 64 sessions stay open (the table's size), each without a stream: their sockets are gone.
        settled = wait_until(lambda: fd_count(child.pid) <= baseline + 12, timeout=10)
        self.assertTrue(settled, f"{fd_count(child.pid)} descriptors after 120 closed streams (baseline {baseline})")


class MCPStdio(ServerTestCase):
    def test_a_10_mb_line_is_refused_at_once_and_the_session_goes_on(self):
        child = self.spawn([BIN, "mcp", "--registry", self.registry], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        child.stdin.write((INITIALIZE + "\n").encode())
        child.stdin.flush()
        self.assertIn(b'"serverInfo"', child.stdout.readline())
        huge = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                           "params": {"name": "servers/get", "arguments": {"id": "x" * (10 << 20)}}})
        started = time.monotonic()
        child.stdin.write((huge + "\n").encode())
        child.stdin.write((json.dumps({"jsonrpc": "2.0", "id": 3, "method": "ping"}) + "\n").encode())
        child.stdin.flush()
        ready, _, _ = select.select([child.stdout], [], [], 30)
        self.assertTrue(ready, "no answer to a 10 MB line within 30 s")
        error = json.loads(child.stdout.readline())
        self.assertEqual(error["error"]["code"], -32700)
        self.assertIn("4194304", error["error"]["message"])
        self.assertLess(time.monotonic() - started, 30)
        pong = json.loads(child.stdout.readline())
        self.assertEqual(pong["id"], 3)
        self.assertIn("result", pong)
        child.stdin.close()
        self.assertEqual(child.wait(timeout=15), 0)

    def test_a_long_line_under_the_cap_is_read_in_linear_time(self):
        child = self.spawn([BIN, "mcp", "--registry", self.registry, "--max-line-bytes", str(32 << 20)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        child.stdin.write((INITIALIZE + "\n").encode())
        child.stdin.flush()
        child.stdout.readline()
        # 8 MB: the SDK's transport took well over a minute of CPU on this; linear reading takes
        # about a second.
        call = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {"_meta": {"pad": "y" * (8 << 20)}}})
        child.stdin.write((call + "\n").encode())
        child.stdin.flush()
        ready, _, _ = select.select([child.stdout], [], [], 40)
        self.assertTrue(ready, "no answer to an 8 MB line within 40 s")
        self.assertEqual(json.loads(child.stdout.readline())["id"], 2)


class CLIInput(ServerTestCase):
    def test_register_from_an_endless_stdin_stops_at_the_limit(self):
        yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
        try:
            result = subprocess.run([BIN, "register", "--file", "-", "--registry", self.registry],
                                    stdin=yes.stdout, capture_output=True, timeout=20)
        finally:
            yes.kill()
            yes.wait()
            yes.stdout.close()
        self.assertEqual(result.returncode, 9, result.stderr)
        self.assertIn(b"over the entry limit", result.stderr)

    def test_watch_escapes_what_other_processes_wrote(self):
        self.register("term")
        watch = self.spawn([BIN, "watch", "--count", "1", "--registry", self.registry],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: b"watching" in (watch.stderr.peek() if hasattr(watch.stderr, "peek") else b"watching"), timeout=5)
        time.sleep(0.5)
        self.cli("health", "term", "DEGRADED", "\x1b[2J\x1b[31mfake\r\n12:00:00.000  gen 9  - everything\u202e")
        out = watch.communicate(timeout=10)[0]
        self.assertEqual(out.count(b"\n"), 1, out)
        self.assertNotIn(b"\x1b", out)
        self.assertNotIn(b"\r", out)
        self.assertNotIn("\u202e".encode(), out)
        self.assertIn(b"\\u{1B}[2J", out)

    def test_a_tiny_keep_alive_is_refused(self):
        for value in ["0.0001", "0", "0.5"]:
            result = self.cli("serve", "--port", "0", "--keep-alive", value, check=False)
            self.assertEqual(result.returncode, 64, value)

    def test_read_only_commands_create_nothing(self):
        missing = os.path.join(self.dir, "no", "such", "dir", "servers.json")
        for args in [("list",), ("list", "--json"), ("get", "x"), ("resolve", "tool", "t")]:
            subprocess.run([BIN, *args, "--registry", missing], capture_output=True, timeout=20)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "no")), "a read-only command made the directory chain")
        empty = os.path.join(self.dir, "empty")
        os.mkdir(empty, 0o700)
        result = subprocess.run([BIN, "list", "--registry", os.path.join(empty, "servers.json")], capture_output=True, timeout=20)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(os.listdir(empty), [], "list created files")
        not_a_file = os.path.join(self.dir, "fifo")
        os.mkfifo(not_a_file, 0o600)
        result = subprocess.run([BIN, "list", "--registry", not_a_file], capture_output=True, timeout=20)
        self.assertNotEqual(result.returncode, 0)
        self.assertFalse(os.path.exists(not_a_file + ".lock"), "list created a lock file beside a fifo")

    def test_arguments_that_are_not_utf8_are_refused(self):
        result = subprocess.run([BIN.encode(), b"get", b"caf\xe9", b"--registry", self.registry.encode()],
                                capture_output=True, timeout=20)
        self.assertEqual(result.returncode, 64, result.stderr)
        self.assertIn(b"not valid UTF-8", result.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(self.registry)))


def main():
    global BIN, BEFORE
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--bin", default=BIN)
    parser.add_argument("--before", action="store_true")
    args, rest = parser.parse_known_args()
    BIN = os.path.abspath(args.bin)
    BEFORE = args.before
    if not os.access(BIN, os.X_OK):
        sys.exit(f"test_servers.py: no peer-registry binary at {BIN}: build it (swift build --product peer-registry) or pass --bin")
    if os.geteuid() != 0 and not shutil.which("setpriv"):
        sys.exit("test_servers.py: needs setpriv (apt-get install -y util-linux) and root for the second-user test")
    print(f"test_servers.py: testing {BIN}", file=sys.stderr)
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
