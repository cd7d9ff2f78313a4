"""examples/python/server.py, an official-SDK MCPServer served by peer_registry.mcp.serve:
found through the registry, used by the official MCP client, gone after SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

import peer_registry
from peer_registry import Registry

from _support import REPO, child_env, wait_for

SERVER = REPO / "examples" / "python" / "server.py"


async def use_with_the_official_client(url: str) -> None:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=30) as session:
            init = await session.initialize()
            assert init.server_info.name == "python-example"
            assert sorted(t.name for t in (await session.list_tools()).tools) == ["add", "echo"]
            result = await session.call_tool("add", {"a": 2, "b": 40})
            assert not result.is_error, result
            assert result.content[0].text == "42"  # type: ignore[union-attr]
            clock = await session.read_resource("resource://python-example/clock")
            assert float(clock.contents[0].text) > 0  # type: ignore[union-attr]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_example_mcp_server_is_found_used_and_leaves_the_registry_clean(
    reg: Registry, registry_path: Path, stop_signal: signal.Signals
) -> None:
    env = child_env({"PEER_REGISTRY_PATH": str(registry_path)})
    server = subprocess.Popen([sys.executable, str(SERVER), "example-under-test"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Found through the registry, not through what the process printed.
        entry = wait_for(lambda: _get(reg, "example-under-test") or server.poll() is not None,
                         timeout=30, what="the example's entry")
        assert entry is not True, server.communicate()[1]
        assert entry["pid"] == server.pid
        assert entry["transport"] == "http"
        assert entry["name"] == "python-example"
        # The capabilities come from the MCPServer itself.
        assert sorted(entry["capabilities"]["tools"]) == ["add", "echo"]
        assert entry["capabilities"]["resources"] == ["resource://python-example/clock"]
        assert entry["capabilities"]["prompts"] == ["greet"]
        port = urllib.parse.urlsplit(entry["url"]).port
        assert port and entry["url"] == f"http://127.0.0.1:{port}/mcp"
        assert reg.resolve_tool("add")["url"] == entry["url"]

        # The registered port is the one really serving MCP.
        anyio.run(use_with_the_official_client, entry["url"])
        probed = reg.probe("example-under-test", timeout=5)
        assert probed["health"]["status"] == "HEALTHY", probed["health"]

        server.send_signal(stop_signal)
        out, err = server.communicate(timeout=20)
        assert server.returncode == 0, err
        assert "example-under-test listening on " + entry["url"] in out
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
