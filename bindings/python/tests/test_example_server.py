"""examples/python/server.py: registers its real port once listening, leaves on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import peer_registry
from peer_registry import Registry

from _support import REPO, child_env, wait_for

SERVER = REPO / "examples" / "python" / "server.py"


def rpc(url: str, payload: object) -> object:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_example_server_registers_answers_and_unregisters(reg: Registry, registry_path: Path,
                                                          stop_signal: signal.Signals) -> None:
    env = child_env({"PEER_REGISTRY_PATH": str(registry_path)})
    env.pop("PYTHONPATH")  # the example must find the binding from a checkout by itself
    server = subprocess.Popen([sys.executable, str(SERVER), "example-under-test"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        announced = server.stdout.readline()
        assert "example-under-test listening on http://127.0.0.1:" in announced, server.stderr
        entry = wait_for(lambda: _get(reg, "example-under-test"), what="the example's entry")
        assert entry["pid"] == server.pid
        assert entry["transport"] == "http"
        assert entry["capabilities"]["tools"] == ["echo", "time"]
        port = urllib.parse.urlsplit(entry["url"]).port
        assert port and entry["url"] == f"http://127.0.0.1:{port}/mcp"
        assert entry.get("port", port) == port
        assert announced.strip().endswith(entry["url"])

        # The registered port is the one really listening.
        assert rpc(entry["url"], {"jsonrpc": "2.0", "id": 7, "method": "ping"}) == {"jsonrpc": "2.0", "id": 7, "result": {}}
        reply = rpc(entry["url"], {"jsonrpc": "2.0", "id": 8, "method": "nope"})
        assert reply["error"]["code"] == -32601  # type: ignore[index]
        assert reg.resolve_tool("echo")["url"] == entry["url"]

        server.send_signal(stop_signal)
        _, err = server.communicate(timeout=15)
        assert server.returncode == 0, err
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    # Unregistered explicitly, not merely dead: the entry is gone from the file itself.
    with pytest.raises(peer_registry.NotFoundError):
        reg.get("example-under-test")
    assert "example-under-test" not in registry_path.read_text()


def _get(reg: Registry, id: str) -> "peer_registry.ServerEntry | None":
    try:
        return reg.get(id)
    except peer_registry.NotFoundError:
        return None
