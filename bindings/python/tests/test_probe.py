"""Registry.probe against real loopback listeners: one that answers an MCP ping, a port that
refuses connections, and one that accepts but never answers."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, List, Tuple

import pytest

import peer_registry
from peer_registry import Registry


class _PingHandler(BaseHTTPRequestHandler):
    """Answers a JSON-RPC ``ping`` POSTed to /mcp like any MCP server does."""

    pings: List[dict]

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if self.path != "/mcp" or not isinstance(request, dict) or request.get("method") != "ping":
            self.send_error(400)
            return
        self.server.pings.append(request)  # type: ignore[attr-defined]
        answer = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ping_server() -> Iterator[Tuple[str, List[dict]]]:
    """(url, pings received) of an HTTP server on a loopback port answering MCP pings."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PingHandler)
    server.pings = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mcp", server.pings  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


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
    """A loopback listener that accepts connections and never answers (nor closes them)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: List[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_server_answering_the_mcp_ping_becomes_healthy(
    reg: Registry, other: Registry, ping_server: Tuple[str, List[dict]]
) -> None:
    url, pings = ping_server
    reg.register({"id": "up", "url": url, "capabilities": {"tools": ["upTool"]}})
    before = reg.get("up")
    assert before["health"]["status"] == "UNKNOWN"

    probed = reg.probe("up", timeout=2.0)

    assert probed["id"] == "up" and probed["url"] == url
    assert probed["health"]["status"] == "HEALTHY"
    assert "MCP ping ok" in probed["health"]["message"]
    assert "consecutiveFailures" not in probed["health"]
    assert probed["health"]["lastCheck"].endswith("Z")
    assert [p["method"] for p in pings] == ["ping"]
    # Recorded in the file, not just returned: another handle sees it.
    assert other.get("up") == probed
    assert other.resolve_tool("upTool")["id"] == "up"


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
        assert probed["health"]["message"]
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
