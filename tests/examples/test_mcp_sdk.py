"""The Node and Go example servers driven by a client nobody here wrote: the official MCP Python
SDK (`mcp` on PyPI), over streamable HTTP.

Each test starts the real example process on a private registry, finds it the way a client
would — resolving its tool through the registry (the Python binding) and connecting to the URL
found there — then initializes, lists and calls tools through `ClientSession`, and finally
sends SIGTERM and checks that the entry is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python" / "src"))
import peer_registry  # noqa: E402  (the repository's binding, by PEER_REGISTRY_LIB)

TOOLS = ["echo", "add"]


@pytest.fixture(scope="session")
def go_example(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    binary = tmp_path_factory.mktemp("go-example") / "server"
    subprocess.run(["go", "build", "-o", str(binary), "./server"], cwd=ROOT / "examples" / "go",
                   check=True, timeout=300)
    return [str(binary), "-id"]


@pytest.fixture(params=["node", "go"])
def example_command(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "node":
        return ["node", str(ROOT / "examples" / "node" / "server.js")]
    return request.getfixturevalue("go_example")


@pytest.fixture
def registry_path(tmp_path: Path) -> str:
    directory = tmp_path / "registry"
    directory.mkdir(mode=0o700)
    return str(directory / "servers.json")


def wait_for_tool(registry: peer_registry.Registry, tool: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return registry.resolve_tool(tool)
        except peer_registry.NotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_official_client_finds_the_example_through_the_registry_and_calls_its_tools(
        example_command: list[str], registry_path: str) -> None:
    server_id = "sdk-under-test"
    env = {**os.environ, "PEER_REGISTRY_PATH": registry_path}
    server = subprocess.Popen([*example_command, server_id], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    registry = peer_registry.Registry(registry_path)
    try:
        entry = wait_for_tool(registry, "echo")
        assert entry["id"] == server_id
        assert entry["pid"] == server.pid
        assert entry["transport"] == "http"
        assert entry["url"] == f"http://127.0.0.1:{entry['port']}/mcp"
        assert entry["port"] > 0, "the port it got, registered after binding"
        assert sorted(entry["capabilities"]["tools"]) == sorted(TOOLS)

        async def session() -> None:
            with anyio.fail_after(30):
                async with streamable_http_client(entry["url"]) as (read, write):
                    async with ClientSession(read, write) as s:
                        init = await s.initialize()
                        # The SDK asks for the newest version it knows; the example has it.
                        assert init.protocol_version == "2025-11-25"
                        assert init.capabilities.tools is not None
                        assert init.server_info.name.startswith("peer-registry-")
                        listed = await s.list_tools()
                        # What the registry says the server has is what the server says.
                        assert sorted(t.name for t in listed.tools) == sorted(entry["capabilities"]["tools"])
                        assert all(t.input_schema["type"] == "object" for t in listed.tools)
                        echoed = await s.call_tool("echo", {"text": "through the registry"})
                        assert not echoed.is_error
                        assert echoed.content[0].text == "through the registry"
                        added = await s.call_tool("add", {"a": 2, "b": 40})
                        assert added.content[0].text == "42"
                        bad = await s.call_tool("add", {"a": "two", "b": 40})
                        assert bad.is_error, "a tool's own failure is a result with is_error"
                        with pytest.raises(MCPError):
                            await s.call_tool("no-such-tool", {})
                        await s.send_ping()

        anyio.run(session)
        assert server.poll() is None, "the server is still serving"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=15)
        finally:
            if server.poll() is None:
                server.kill()
        stderr = server.stderr.read()
        registry_after = peer_registry.Registry(registry_path)
        try:
            with pytest.raises(peer_registry.NotFoundError):
                registry_after.get(server_id)
            assert registry_after.list() == []
        finally:
            registry_after.close()
            registry.close()
    assert code == 0, f"exit {code}; stderr:\n{stderr}"
