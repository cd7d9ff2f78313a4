"""Registry.probe speaks MCP: a real MCPServer (official SDK, streamable HTTP and legacy SSE) is
HEALTHY after the whole handshake; servers answering 400, 500, garbage, a JSON-RPC error, or
nothing at all never are; refused ports degrade, then go DOWN; a name lookup that hangs ends at
the probe's deadline."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import pytest

import peer_registry
from peer_registry import Registry

from _support import TESTS, child_env

FIXTURE = TESTS / "mcp_fixture_server.py"


# ---- a real MCPServer in its own process ---------------------------------------------------

class RecordingServer:
    def __init__(self, transport: str, log: Path, bearer: Optional[str] = None) -> None:
        self.log = log
        env = dict(os.environ, **({"FIXTURE_BEARER": bearer} if bearer else {}))
        self.process = subprocess.Popen([sys.executable, str(FIXTURE), transport, str(log)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.isdigit():
            self.process.kill()
            raise AssertionError(f"fixture server did not start: {line!r} {self.process.communicate()[1]}")
        self.port = int(line)

    def requests(self) -> List[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


@pytest.fixture
def sdk_http(tmp_path: Path) -> Iterator[RecordingServer]:
    server = RecordingServer("http", tmp_path / "http.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sdk_sse(tmp_path: Path) -> Iterator[RecordingServer]:
    server = RecordingServer("sse", tmp_path / "sse.log")
    try:
        yield server
    finally:
        server.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_real_mcp_server_over_streamable_http_becomes_healthy(
    reg: Registry, other: Registry, sdk_http: RecordingServer
) -> None:
    url = f"http://127.0.0.1:{sdk_http.port}/mcp"
    reg.register({"id": "sdk", "url": url, "capabilities": {"tools": ["hello"]}})
    assert reg.get("sdk")["health"]["status"] == "UNKNOWN"

    probed = reg.probe("sdk", timeout=5.0)

    assert probed["health"]["status"] == "HEALTHY", probed["health"]
    assert "MCP ping ok after initialize" in probed["health"]["message"]
    assert "consecutiveFailures" not in probed["health"]
    assert probed["health"]["lastCheck"].endswith("Z")
    # Recorded in the file, not just returned: another handle sees it.
    assert other.get("sdk") == probed
    # The handshake as the spec has it, in one session, which the probe deletes after.
    assert wait_until(lambda: len(sdk_http.requests()) >= 4)
    seen = sdk_http.requests()
    assert [(r["method"], r["rpc"]) for r in seen] == [
        ("POST", "initialize"), ("POST", "notifications/initialized"), ("POST", "ping"), ("DELETE", None)]
    assert [r["status"] for r in seen] == [200, 202, 200, 200]
    session = seen[0]["session"]
    assert session is None  # the client has none yet; the server hands one out
    assert seen[1]["session"] and all(r["session"] == seen[1]["session"] for r in seen[1:])


def test_a_real_mcp_server_over_legacy_sse_becomes_healthy(reg: Registry, sdk_sse: RecordingServer) -> None:
    reg.register({"id": "sdk-sse", "url": f"http://127.0.0.1:{sdk_sse.port}/sse", "transport": "sse"})
    probed = reg.probe("sdk-sse", timeout=5.0)
    assert probed["health"]["status"] == "HEALTHY", probed["health"]
    assert "over SSE" in probed["health"]["message"]
    seen = [(r["method"], r["path"], r["rpc"]) for r in sdk_sse.requests() if r["method"] == "POST"]
    assert seen == [("POST", "/messages/", "initialize"), ("POST", "/messages/", "notifications/initialized"),
                    ("POST", "/messages/", "ping")]


def test_the_legacy_flow_against_a_streamable_http_server_is_not_healthy(
    reg: Registry, sdk_http: RecordingServer
) -> None:
    # A GET of /mcp without a session is refused by the SDK: no endpoint event, no HEALTHY.
    reg.register({"id": "wrong-transport", "url": f"http://127.0.0.1:{sdk_http.port}/mcp", "transport": "sse"})
    probed = reg.probe("wrong-transport", timeout=3.0)
    assert probed["health"]["status"] == "DEGRADED", probed["health"]


# ---- servers that answer wrongly, written here with raw sockets (nothing real misbehaves) ----

Responder = Callable[[int, Optional[dict]], Optional[bytes]]


class CannedServer:
    """A loopback HTTP listener whose answer to the n-th request (0-based) with JSON body
    ``rpc`` is ``respond(n, rpc)`` (``None``: keep the connection open, say nothing)."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: List[Tuple[str, Optional[dict]]] = []
        self.held: List[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    body += conn.recv(65536)
                rpc = json.loads(body) if body else None
            except (OSError, ValueError):
                conn.close()
                continue
            self.requests.append((head.split(b" ")[0].decode(), rpc))
            answer = self.respond(len(self.requests) - 1, rpc)
            if answer is None:
                self.held.append(conn)
                continue
            try:
                conn.sendall(answer)
            except OSError:
                pass
            conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        for conn in self.held:
            conn.close()
        self.listener.close()


def http(status: str, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}"
            "Connection: close\r\n\r\n").encode() + body


INIT_RESULT = json.dumps({"jsonrpc": "2.0", "id": "peer-registry-probe-init", "result": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "canned", "version": "1"}}}).encode()


def initialize_ok_then(then: Callable[[int, Optional[dict]], Optional[bytes]]) -> Responder:
    def respond(n: int, rpc: Optional[dict]) -> Optional[bytes]:
        if rpc and rpc.get("method") == "initialize":
            return http("200 OK", INIT_RESULT, extra="Mcp-Session-Id: s1\r\n")
        if rpc and rpc.get("method") == "notifications/initialized":
            return http("202 Accepted", b"")
        return then(n, rpc)
    return respond


MISBEHAVING = {
    # What the official SDK answers to a bare ping without initialize: the old probe's HEALTHY.
    "400 to initialize": (lambda n, rpc: http("400 Bad Request", b'{"jsonrpc":"2.0","id":null,"error":'
                                              b'{"code":-32600,"message":"Bad Request: Missing session ID"}}'),
                          "HTTP 400 to initialize"),
    "500 to initialize": (lambda n, rpc: http("500 Internal Server Error", b"oops", "text/plain"),
                          "HTTP 500 to initialize"),
    "not HTTP at all": (lambda n, rpc: b"\x00\xffSSH-2.0-garbage\r\n\r\n", "not an HTTP answer"),
    "200 with garbage": (lambda n, rpc: http("200 OK", b"<html>hello</html>", "text/html"), "not JSON"),
    "JSON-RPC error": (lambda n, rpc: http("200 OK", b'{"jsonrpc":"2.0","id":"peer-registry-probe-init",'
                                           b'"error":{"code":-32601,"message":"Method not found"}}'),
                       "initialize answered JSON-RPC error -32601"),
    "result without protocolVersion": (lambda n, rpc: http("200 OK", b'{"jsonrpc":"2.0","id":'
                                                           b'"peer-registry-probe-init","result":{}}'),
                                       "no protocolVersion"),
    "answer to another id": (lambda n, rpc: http("200 OK", b'{"jsonrpc":"2.0","id":7,"result":{}}'),
                             "not a JSON-RPC response to it"),
    "initialize ok, ping 500": (initialize_ok_then(lambda n, rpc: http("500 Internal Server Error", b"")),
                                "HTTP 500 to ping"),
    "initialize ok, ping garbage SSE": (initialize_ok_then(lambda n, rpc: http(
        "200 OK", b"event: message\ndata: {not json\n\n", "text/event-stream")), "the ping answer is not JSON"),
    "initialize ok, ping hangs": (initialize_ok_then(lambda n, rpc: None if rpc and rpc.get("method") == "ping"
                                                     else http("200 OK", b"")), "no HTTP answer within 700 ms"),
    "hangs": (lambda n, rpc: None, "no HTTP answer within 700 ms"),
}


@pytest.mark.parametrize("case", list(MISBEHAVING), ids=list(MISBEHAVING))
def test_a_server_that_does_not_complete_the_handshake_is_never_healthy(reg: Registry, case: str) -> None:
    respond, why = MISBEHAVING[case]
    server = CannedServer(respond)
    try:
        reg.register({"id": "odd", "url": server.url})
        start = time.monotonic()
        probed = reg.probe("odd", timeout=0.7)
        took = time.monotonic() - start
        assert probed["health"]["status"] == "DEGRADED", probed["health"]
        assert why in probed["health"]["message"], probed["health"]["message"]
        assert took < 5, f"a 0.7 s probe took {took:.2f} s"
        if case.startswith("initialize ok"):
            # The session the server handed out is deleted even though the probe failed.
            assert wait_until(lambda: ("DELETE", None) in server.requests, timeout=3), server.requests
    finally:
        server.close()


def test_the_entrys_headers_are_sent_with_every_request(reg: Registry, tmp_path: Path) -> None:
    # A real MCPServer behind a bearer-token check: HEALTHY only with the entry's Authorization.
    server = RecordingServer("http", tmp_path / "authed.log", bearer="s3cret")
    try:
        url = f"http://127.0.0.1:{server.port}/mcp"
        reg.register({"id": "anonymous", "url": url, "liveness": "none"})
        refused = reg.probe("anonymous", timeout=3.0)
        assert refused["health"]["status"] == "DEGRADED"
        assert "HTTP 401 to initialize" in refused["health"]["message"]

        reg.register({"id": "authed", "url": url, "headers": {"Authorization": "Bearer s3cret"}})
        probed = reg.probe("authed", timeout=5.0)
        assert probed["health"]["status"] == "HEALTHY", probed["health"]
        assert "s3cret" not in probed["health"]["message"]
        assert wait_until(lambda: len(server.requests()) >= 5)
        authed = server.requests()[1:]
        assert [r["rpc"] for r in authed] == ["initialize", "notifications/initialized", "ping", None]
        assert {r["authorization"] for r in authed} == {"Bearer s3cret"}
        assert all(r["status"] != 401 for r in authed)
    finally:
        server.stop()


# ---- refused and silent ports, timeouts -----------------------------------------------------

@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A loopback port held bound but not listening: every connect is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        sock.close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    server = CannedServer(lambda n, rpc: None)
    try:
        yield server.url
    finally:
        server.close()


def test_a_refused_port_degrades_after_one_failure_and_is_down_after_three(
    reg: Registry, other: Registry, refusing_url: str
) -> None:
    reg.register({"id": "gone", "url": refusing_url, "liveness": "none",
                  "capabilities": {"tools": ["goneTool"]}})
    expected = ["DEGRADED", "DEGRADED", "DOWN"]
    for failures, status in enumerate(expected, start=1):
        probed = reg.probe("gone", timeout=1.0)  # a failed probe is recorded, not raised
        assert probed["health"]["status"] == status, probed["health"]
        assert probed["health"]["consecutiveFailures"] == failures
        assert "refused" in probed["health"]["message"]
        assert other.get("gone")["health"] == probed["health"]
        if status == "DEGRADED":
            assert other.resolve_tool("goneTool")["id"] == "gone"  # DEGRADED still resolves
    with pytest.raises(peer_registry.NotFoundError):
        other.resolve_tool("goneTool")  # DOWN never resolves
    assert [e["id"] for e in other.list(status="DOWN")] == ["gone"]


def test_a_server_that_never_answers_is_degraded_within_the_timeout(
    reg: Registry, silent_url: str, deadline
) -> None:
    reg.register({"id": "mute", "url": silent_url})
    deadline(10)  # a probe that ignores its timeout fails here instead of hanging the suite
    start = time.monotonic()
    probed = reg.probe("mute", timeout=0.3)
    took = time.monotonic() - start
    assert probed["health"]["status"] == "DEGRADED"
    assert probed["health"]["consecutiveFailures"] == 1
    # The seconds given arrive as milliseconds: the library reports the wait it was given.
    assert "300 ms" in probed["health"]["message"], probed["health"]["message"]
    assert 0.29 <= took < 5, f"a 0.3 s probe took {took:.2f} s"


def test_a_tiny_timeout_is_rounded_up_not_turned_into_the_default(reg: Registry, silent_url: str) -> None:
    reg.register({"id": "mute", "url": silent_url})
    probed = reg.probe("mute", timeout=0.0001)
    assert "1 ms" in probed["health"]["message"], probed["health"]["message"]


HANGING_LOOKUP = textwrap.dedent("""
    import json, socket, sys, time, peer_registry
    # A DNS server that never answers, on the namespace's own loopback.
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blackhole.bind(("127.0.0.1", 53))
    reg = peer_registry.Registry(sys.argv[1])
    reg.register({"id": "far", "url": "http://mcp.hangs.peer-registry.test:8080/mcp", "liveness": "none"})
    start = time.monotonic()
    probed = reg.probe("far", timeout=0.5)
    print(json.dumps({"took": time.monotonic() - start, "health": probed["health"]}))
""")


def test_a_name_lookup_that_hangs_ends_at_the_probe_deadline(tmp_path: Path) -> None:
    # A private mount and network namespace (root): resolv.conf names a DNS server on loopback
    # that never answers, so getaddrinfo alone would wait 5 s.
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test needs root and unshare(1) (util-linux): run the suite as root")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
    script = tmp_path / "lookup.py"
    script.write_text(HANGING_LOOKUP)
    registry = tmp_path / "reg" / "servers.json"
    shell = (f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
             f"exec {sys.executable} {script} {registry}")
    result = subprocess.run(["unshare", "--mount", "--net", "sh", "-c", shell], env=child_env(),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["health"]["status"] == "DEGRADED"
    assert "looking up mcp.hangs.peer-registry.test took longer than 500 ms" in outcome["health"]["message"]
    assert outcome["took"] < 1.5, outcome


def test_probe_errors(reg: Registry, registry_path) -> None:
    with pytest.raises(peer_registry.NotFoundError):
        reg.probe("nobody")
    with pytest.raises(peer_registry.InvalidArgumentError):
        reg.probe("nul\0inside")
    with pytest.raises(TypeError):
        reg.probe("nobody", timeout="2")  # type: ignore[arg-type]
    with pytest.raises(peer_registry.InvalidArgumentError):
        reg.probe("nobody", timeout=float("nan"))
    reg.close()
    with pytest.raises(peer_registry.ClosedError):
        reg.probe("nobody")
