"""`peer-registry mcp` driven by the official MCP Python SDK (the `mcp` package from PyPI).

Each test starts the real binary with its own registry, over stdio (and one over streamable
HTTP), the way an MCP client configured with {"command": "peer-registry", "args": ["mcp"]} does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
import mcp.types as types

HERE = Path(__file__).resolve().parent
TIMEOUT = 60  # seconds for one test's whole conversation

# The SDK warns that resources/subscribe is gone from its newest protocol revision (2026-07-28);
# the Swift SDK speaks up to 2025-11-25, where subscribing is how updates are asked for.
pytestmark = pytest.mark.filterwarnings("ignore:resources/subscribe is removed")


class Notifications:
    """Server notifications as they arrive, with a way to wait for one."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str | None]] = []
        self._changed = anyio.Event()

    async def handler(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.items.append(("updated", message.params.uri))
        elif isinstance(message, types.ResourceListChangedNotification):
            self.items.append(("list_changed", None))
        else:
            return
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, item: tuple[str, str | None], timeout: float = 10) -> None:
        with anyio.fail_after(timeout):
            while item not in self.items:
                await self._changed.wait()

    def clear(self) -> None:
        self.items.clear()


@asynccontextmanager
async def mcp_session(binary: str, registry: str, notifications: Notifications | None = None) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=binary, args=["mcp", "--registry", registry])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=30,
                                 message_handler=notifications.handler if notifications else None) as session:
            await session.initialize()
            yield session


def run(body: Callable[[], Any]) -> None:
    async def bounded() -> None:
        with anyio.fail_after(TIMEOUT):
            await body()
    anyio.run(bounded)


def text_of(result: types.CallToolResult) -> str:
    assert result.content and isinstance(result.content[0], types.TextContent)
    return result.content[0].text


def ids(result: types.CallToolResult) -> list[str]:
    assert not result.is_error, text_of(result)
    return [s["id"] for s in result.structured_content["servers"]]


# --- handshake and tool listing ------------------------------------------------------------

def test_initialize_and_list_tools(peer_registry_bin: str, registry_path: str) -> None:
    async def body() -> None:
        params = StdioServerParameters(command=peer_registry_bin, args=["mcp", "--registry", registry_path])
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name == "peer-registry"
            assert init.capabilities.tools is not None
            assert init.capabilities.resources is not None
            assert init.capabilities.resources.subscribe is True
            assert init.capabilities.resources.list_changed is True
            assert "instances/list" in (init.instructions or "")

            tools = (await session.list_tools()).tools
            assert [t.name for t in tools] == ["instances/list", "servers/get", "servers/resolve", "servers/health"]
            for tool in tools:
                assert tool.input_schema["type"] == "object"
                assert tool.output_schema is not None and tool.output_schema["type"] == "object"
                assert tool.description
            by_name = {t.name: t for t in tools}
            assert set(by_name["instances/list"].input_schema["properties"]) == {"healthy", "transport", "tool", "scope"}
            assert by_name["servers/resolve"].input_schema["properties"]["scope"]["enum"] == ["local", "cluster"]
            assert by_name["servers/get"].input_schema["required"] == ["id"]
            assert by_name["servers/resolve"].input_schema["required"] == ["kind", "name"]
            assert set(by_name["servers/health"].input_schema["properties"]) == {"id", "probe"}
    run(body)


# --- each tool, good and bad arguments -----------------------------------------------------

def test_instances_list(peer_registry_bin: str, registry_path: str, cli) -> None:
    cli.register_static("journey", tools=("findTrips",))
    cli.register_static("weather", url="ws://127.0.0.1:9/ws", tools=("forecast", "findTrips"))
    cli.run("health", "journey", "HEALTHY")

    async def body() -> None:
        async with mcp_session(peer_registry_bin, registry_path) as s:
            everything = await s.call_tool("instances/list", {})
            assert ids(everything) == ["journey", "weather"]
            # The text content is the same JSON as the structured content (validated by the SDK
            # against the tool's output schema).
            assert json.loads(text_of(everything)) == everything.structured_content
            journey = everything.structured_content["servers"][0]
            assert journey["url"] == "http://127.0.0.1:9/journey/mcp"
            assert journey["capabilities"]["tools"] == ["findTrips"]
            assert journey["health"]["status"] == "HEALTHY"
            assert isinstance(everything.structured_content["generation"], int)

            assert ids(await s.call_tool("instances/list", {"healthy": True})) == ["journey"]
            assert ids(await s.call_tool("instances/list", {"healthy": False})) == ["weather"]
            assert ids(await s.call_tool("instances/list", {"transport": "ws"})) == ["weather"]
            assert ids(await s.call_tool("instances/list", {"tool": "forecast"})) == ["weather"]
            assert ids(await s.call_tool("instances/list", {"tool": "findTrips", "transport": "http"})) == ["journey"]

            for args, message in [
                ({"healthy": "yes"}, 'argument "healthy" must be a boolean'),
                ({"transport": "pigeon"}, "must be one of http, sse, ws, stdio"),
                ({"tool": 42}, 'argument "tool" must be a string, not a number'),
                ({"colour": "blue"}, 'unknown argument "colour"'),
            ]:
                bad = await s.call_tool("instances/list", args)
                assert bad.is_error, args
                assert message in text_of(bad), text_of(bad)
    run(body)


def test_servers_get(peer_registry_bin: str, registry_path: str, cli) -> None:
    cli.register_static("journey", tools=("findTrips",))

    async def body() -> None:
        async with mcp_session(peer_registry_bin, registry_path) as s:
            ok = await s.call_tool("servers/get", {"id": "journey"})
            assert not ok.is_error
            assert ok.structured_content["id"] == "journey"
            assert ok.structured_content["liveness"] == "none"
            assert json.loads(text_of(ok)) == ok.structured_content

            unknown = await s.call_tool("servers/get", {"id": "nobody"})
            assert unknown.is_error
            assert text_of(unknown).startswith('PEERREG_ENOTFOUND: no live server with id "nobody"')

            missing = await s.call_tool("servers/get", {})
            assert missing.is_error
            assert text_of(missing) == 'servers/get: argument "id" is required'

            bad = await s.call_tool("servers/get", {"id": "../../etc/passwd"})
            assert bad.is_error
            assert "is not a server id" in text_of(bad)
    run(body)


def test_servers_resolve(peer_registry_bin: str, registry_path: str, cli) -> None:
    cli.register_static("journey", tools=("findTrips", "search"), resources=("resource://journey/",), prompts=("plan-trip",))
    cli.register_static("maps", tools=("search",), resources=("resource://journey/maps/",))

    async def body() -> None:
        async with mcp_session(peer_registry_bin, registry_path) as s:
            async def resolved(kind: str, name: str) -> str:
                r = await s.call_tool("servers/resolve", {"kind": kind, "name": name})
                assert not r.is_error, text_of(r)
                assert r.structured_content["kind"] == kind and r.structured_content["name"] == name
                return r.structured_content["server"]["id"]

            assert await resolved("tool", "findTrips") == "journey"
            assert await resolved("tool", "maps.search") == "maps"
            assert await resolved("prompt", "plan-trip") == "journey"
            assert await resolved("resource", "resource://journey/trips/7") == "journey"
            assert await resolved("resource", "resource://journey/maps/paris") == "maps"

            tie = await s.call_tool("servers/resolve", {"kind": "tool", "name": "search"})
            assert tie.is_error
            assert text_of(tie).startswith("PEERREG_EAMBIGUOUS: ")
            assert "journey, maps" in text_of(tie)

            nothing = await s.call_tool("servers/resolve", {"kind": "prompt", "name": "nope"})
            assert nothing.is_error and text_of(nothing).startswith("PEERREG_ENOTFOUND: ")

            bad_kind = await s.call_tool("servers/resolve", {"kind": "widget", "name": "x"})
            assert bad_kind.is_error and 'argument "kind" must be "tool", "resource" or "prompt"' in text_of(bad_kind)
            no_name = await s.call_tool("servers/resolve", {"kind": "tool"})
            assert no_name.is_error and text_of(no_name) == 'servers/resolve: argument "name" is required'
    run(body)


def test_servers_health(peer_registry_bin: str, registry_path: str, cli) -> None:
    # Port 1 on loopback: nothing listens there, so a probe fails at once.
    cli.register_static("gone", url="http://127.0.0.1:1/mcp")
    cli.run("health", "gone", "HEALTHY", "was fine")

    async def body() -> None:
        async with mcp_session(peer_registry_bin, registry_path) as s:
            reported = await s.call_tool("servers/health", {"id": "gone"})
            assert not reported.is_error, text_of(reported)
            assert reported.structured_content["probed"] is False
            assert reported.structured_content["health"]["status"] == "HEALTHY"
            assert reported.structured_content["health"]["message"] == "was fine"

            probed = await s.call_tool("servers/health", {"id": "gone", "probe": True})
            assert not probed.is_error, text_of(probed)
            assert probed.structured_content["probed"] is True
            assert probed.structured_content["health"]["status"] == "DEGRADED"
            assert probed.structured_content["health"]["consecutiveFailures"] == 1
            # Recorded in the registry: another process sees it.
            stored = json.loads(cli.run("get", "gone", "--compact").stdout)
            assert stored["health"]["status"] == "DEGRADED"

            bad = await s.call_tool("servers/health", {"id": "gone", "probe": "yes"})
            assert bad.is_error and 'argument "probe" must be a boolean' in text_of(bad)
            unknown = await s.call_tool("servers/health", {"id": "nobody", "probe": True})
            assert unknown.is_error and text_of(unknown).startswith("PEERREG_ENOTFOUND: ")
    run(body)


def test_unknown_tool_is_a_protocol_error_and_the_server_keeps_serving(peer_registry_bin: str, registry_path: str) -> None:
    async def body() -> None:
        async with mcp_session(peer_registry_bin, registry_path) as s:
            with pytest.raises(MCPError) as caught:
                await s.call_tool("servers/delete", {"id": "x"})
            assert caught.value.code == -32602
            assert 'Unknown tool: "servers/delete"' in caught.value.message
            still = await s.call_tool("instances/list", {})
            assert ids(still) == []
    run(body)


# --- the resource ---------------------------------------------------------------------------

def test_resources(peer_registry_bin: str, registry_path: str, cli) -> None:
    cli.register_static("journey", tools=("findTrips",))

    async def body() -> None:
        async with mcp_session(peer_registry_bin, registry_path) as s:
            listed = (await s.list_resources()).resources
            assert [str(r.uri) for r in listed] == ["registry://servers", "registry://servers/journey"]
            assert all(r.mime_type == "application/json" for r in listed)
            templates = (await s.list_resource_templates()).resource_templates
            assert [t.uri_template for t in templates] == ["registry://servers/{id}"]

            contents = (await s.read_resource("registry://servers")).contents
            assert len(contents) == 1 and contents[0].mime_type == "application/json"
            document = json.loads(contents[0].text)
            assert [e["id"] for e in document["servers"]] == ["journey"]
            tool = await s.call_tool("instances/list", {})
            assert document == tool.structured_content

            one = json.loads((await s.read_resource("registry://servers/journey")).contents[0].text)
            assert one["id"] == "journey"

            with pytest.raises(MCPError) as unknown:
                await s.read_resource("registry://nowhere")
            assert unknown.value.code == -32002
            with pytest.raises(MCPError) as gone:
                await s.read_resource("registry://servers/nobody")
            assert gone.value.code == -32002
    run(body)


# --- notifications when ANOTHER process changes the registry -------------------------------

def test_notification_when_another_process_registers_through_the_python_binding(
        peer_registry_bin: str, registry_path: str, binding_env: dict[str, str]) -> None:
    async def body() -> None:
        notes = Notifications()
        async with mcp_session(peer_registry_bin, registry_path, notes) as s:
            await s.subscribe_resource("registry://servers")
            assert ids(await s.call_tool("instances/list", {})) == []

            helper = subprocess.Popen(
                [sys.executable, str(HERE / "register_helper.py"), registry_path, "py-helper", "8931"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=binding_env, text=True)
            try:
                assert helper.stdout.readline().strip() == "ready"
                await notes.wait_for(("updated", "registry://servers"))
                await notes.wait_for(("list_changed", None))
                document = json.loads((await s.read_resource("registry://servers")).contents[0].text)
                assert [e["id"] for e in document["servers"]] == ["py-helper"]
                entry = document["servers"][0]
                assert entry["liveness"] == "lease" and entry["pid"] == helper.pid
                resolved = await s.call_tool("servers/resolve", {"kind": "tool", "name": "helperTool"})
                assert resolved.structured_content["server"]["id"] == "py-helper"

                # Killed without a chance to unregister: its lease goes with it, and the
                # registry's watch notices without any other writer.
                notes.clear()
                helper.send_signal(signal.SIGKILL)
                helper.wait(timeout=10)
                await notes.wait_for(("updated", "registry://servers"))
                await notes.wait_for(("list_changed", None))
                assert ids(await s.call_tool("instances/list", {})) == []
            finally:
                if helper.poll() is None:
                    helper.kill()
                    helper.wait()
                helper.stdin.close()
                helper.stdout.close()
    run(body)


def test_notification_when_the_cli_registers(peer_registry_bin: str, registry_path: str, cli) -> None:
    async def body() -> None:
        notes = Notifications()
        async with mcp_session(peer_registry_bin, registry_path, notes) as s:
            await s.subscribe_resource("registry://servers/cli-server")
            cli.register_static("cli-server", tools=("t",))
            await notes.wait_for(("updated", "registry://servers/cli-server"))
            await notes.wait_for(("list_changed", None))
            notes.clear()
            cli.run("health", "cli-server", "DEGRADED", "slow")
            await notes.wait_for(("updated", "registry://servers/cli-server"))
            assert ("list_changed", None) not in notes.items  # same servers, one changed
            entry = json.loads((await s.read_resource("registry://servers/cli-server")).contents[0].text)
            assert entry["health"]["status"] == "DEGRADED"
    run(body)


# --- a corrupt registry file -----------------------------------------------------------------

def test_corrupt_registry_gives_errors_not_a_crash(peer_registry_bin: str, registry_path: str, cli) -> None:
    cli.register_static("journey")

    async def body() -> None:
        notes = Notifications()
        async with mcp_session(peer_registry_bin, registry_path, notes) as s:
            await s.subscribe_resource("registry://servers")
            with open(registry_path, "w") as f:
                f.write('{"version": 1, "servers": [{"id": oops')
            await notes.wait_for(("updated", "registry://servers"))

            listed = await s.call_tool("instances/list", {})
            assert listed.is_error and text_of(listed).startswith("PEERREG_ECORRUPT: ")
            with pytest.raises(MCPError) as read_error:
                await s.read_resource("registry://servers")
            assert read_error.value.code == -32603 and "PEERREG_ECORRUPT" in read_error.value.message

            # Repaired by another process, the server serves again without a restart.
            notes.clear()
            cli.run("repair")
            cli.register_static("fresh")
            await notes.wait_for(("list_changed", None))
            assert ids(await s.call_tool("instances/list", {})) == ["fresh"]
    run(body)


# --- raw stdio: seed 004's one-shot pipe, and garbage on the wire ---------------------------

def test_one_shot_pipe_and_garbage_input(peer_registry_bin: str, registry_path: str, cli) -> None:
    cli.register_static("test-project")
    lines = [
        "this is not JSON",
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"instances/list"}}',
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{}}}',
        '{"jsonrpc":"2.0","id":3,"method":"no/such/method"}',
    ]
    done = subprocess.run([peer_registry_bin, "mcp", "--registry", registry_path],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    by_id = {r.get("id"): r for r in replies}
    assert "test-project" in by_id[1]["result"]["content"][0]["text"]
    assert by_id[2]["error"]["code"] == -32602
    assert by_id[3]["error"]["code"] == -32601
    assert any(r.get("error", {}).get("code") == -32700 for r in replies)  # the garbage line


# --- streamable HTTP ------------------------------------------------------------------------

def test_streamable_http(peer_registry_bin: str, registry_path: str, cli) -> None:
    from mcp.client.streamable_http import streamable_http_client

    server = subprocess.Popen([peer_registry_bin, "mcp", "--registry", registry_path, "--http", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = server.stdout.readline().strip()
        url, _, token = printed.partition("?token=")
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp") and len(token) == 64, printed

        async def body() -> None:
            import httpx2
            # Without the token (any local process): no session.
            async with httpx2.AsyncClient() as plain:
                refused = await plain.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
                                           headers={"Accept": "application/json, text/event-stream"})
                assert refused.status_code == 401, refused.text
            notes = Notifications()
            # A program sends it as Authorization: Bearer (the printed URL with ?token= works too).
            client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
            async with client, streamable_http_client(url, http_client=client) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=30, message_handler=notes.handler) as s:
                    init = await s.initialize()
                    assert init.server_info.name == "peer-registry"
                    assert len((await s.list_tools()).tools) == 4
                    await s.subscribe_resource("registry://servers")
                    cli.register_static("over-http", tools=("t",))
                    # Notifications travel on the session's GET stream, which the client opens on
                    # its own after initializing; one sent before it is open is not delivered
                    # (the SDK transport keeps it only for a reconnect with Last-Event-ID). So a
                    # late stream gets another change to report.
                    for status in ["DEGRADED", "HEALTHY", "DEGRADED", "HEALTHY"]:
                        try:
                            await notes.wait_for(("updated", "registry://servers"), timeout=3)
                            break
                        except TimeoutError:
                            cli.run("health", "over-http", status)
                    await notes.wait_for(("updated", "registry://servers"))
                    assert ids(await s.call_tool("instances/list", {"tool": "t"})) == ["over-http"]
                    bad = await s.call_tool("servers/get", {"id": "nobody"})
                    assert bad.is_error
        run(body)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            assert server.wait(timeout=15) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            server.stdout.close()
            server.stderr.close()
