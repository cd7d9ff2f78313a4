"""`peer-registry gateway` end to end: real MCPServer backends (streamable HTTP, and legacy
HTTP+SSE) registered through the Python binding, the official MCP Python client over stdio and streamable HTTP (docs/GATEWAY.md)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, async_wait_for, http_gateway, mcp_error_in, run, stdio_gateway, text_of, tool_names, wait_for

sys.path.insert(0, str(ROOT / "bindings" / "python" / "src"))
import peer_registry  # noqa: E402


def expected_exposed(server_id: str, name: str) -> str:
    """The naming rule of docs/GATEWAY.md, written again here from its text."""
    full = f"{server_id}__{name}"
    if len(full.encode()) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", full):
        return full
    h = 0xCBF29CE484222325
    for b in full.encode():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    cleaned = "".join(c if re.fullmatch(r"[A-Za-z0-9_-]", c) else "_" for c in full)[:55]
    return cleaned + "_" + f"{h:016x}"[:8]


async def call_error(session, name: str, args: dict | None = None) -> str:
    try:
        result = await session.call_tool(name, args or {})
    except BaseException as e:  # noqa: BLE001 - the SDK may wrap it in groups
        found = mcp_error_in(e)
        if found is None:
            raise
        return str(found)
    assert result.is_error, f"{name} succeeded: {result.content}"
    return result.content[0].text


# -- aggregation and names ---------------------------------------------------------------------


def test_three_servers_aggregated_over_stdio(world):
    world.start_backend("alpha", "--tools", "search", "--prompts", "summary", "--resource", "docs://alpha/readme")
    world.start_backend("beta", "--tools", "search,lookup", "--template", "items://beta/{item}")
    world.start_backend("gamma", "--prompts", "summary")

    async def main():
        async with stdio_gateway(world) as (s, _):
            names = await async_wait_for(
                lambda: _names_if(s, {"alpha__search", "beta__search", "beta__lookup", "gamma__whoami"}), 20, "three backends")
            # A tool declared by two servers: both appear, under their own names.
            assert {"alpha__search", "beta__search"} <= set(names)
            assert "instances_list" in names
            assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", n) for n in names), names
            # The three call forms.
            assert text_of(await s.call_tool("beta__lookup", {})) == "beta:lookup"
            assert text_of(await s.call_tool("beta.lookup", {})) == "beta:lookup"
            assert text_of(await s.call_tool("lookup", {})) == "beta:lookup"
            assert text_of(await s.call_tool("alpha.search", {})) == "alpha:search"
            # A bare name two servers declare: an error listing both.
            message = await call_error(s, "search")
            assert "alpha" in message and "beta" in message, message
            assert text_of(await s.call_tool("gamma__echo", {"text": "hi"})) == "gamma:hi"

            prompts = sorted(p.name for p in (await s.list_prompts()).prompts)
            assert prompts == ["alpha__summary", "gamma__summary"]
            got = await s.get_prompt("gamma__summary", {"topic": "cats"})
            assert got.messages[0].content.text == "gamma:summary:cats"
            got = await s.get_prompt("alpha.summary", {"topic": "dogs"})
            assert got.messages[0].content.text == "alpha:summary:dogs"

            resources = [str(r.uri) for r in (await s.list_resources()).resources]
            assert resources == ["docs://alpha/readme"]
            read = await s.read_resource("docs://alpha/readme")
            assert read.contents[0].text == "alpha:docs://alpha/readme"
            templates = [t.uri_template for t in (await s.list_resource_templates()).resource_templates]
            assert templates == ["items://beta/{item}"]
            read = await s.read_resource("items://beta/42")
            assert read.contents[0].text == "beta:item:42"

            listing = await s.call_tool("instances_list", {})
            ids = sorted(e["id"] for e in json.loads(text_of(listing))["servers"])
            assert ids == ["alpha", "beta", "gamma"]
    run(main())


def test_completion_is_routed_to_the_prompt_or_template_owner(world):
    world.start_backend("alpha", "--prompts", "summary")
    world.start_backend("beta", "--template", "items://beta/{item}")

    async def main():
        from mcp.types import PromptReference, ResourceTemplateReference
        async with stdio_gateway(world) as (s, _):
            await async_wait_for(lambda: _names_if(s, {"alpha__whoami", "beta__whoami"}), 20, "two backends")
            assert s.server_capabilities.completions is not None
            # A prompt's completion goes to its server, under the server's own name, in all three forms.
            for name in ("alpha__summary", "alpha.summary", "summary"):
                got = await s.complete(PromptReference(type="ref/prompt", name=name), {"name": "topic", "value": "ca"})
                assert got.completion.values == ["alpha:summary:ca"], (name, got)
            # A template's, to the server that lists the template.
            got = await s.complete(ResourceTemplateReference(type="ref/resource", uri="items://beta/{item}"), {"name": "item", "value": "4"})
            assert got.completion.values == ["beta:items://beta/{item}:4"]
            # Nobody's prompt: a JSON-RPC error that says so.
            try:
                await s.complete(PromptReference(type="ref/prompt", name="nobody"), {"name": "x", "value": ""})
                raise AssertionError("a completion for an unknown prompt succeeded")
            except BaseException as e:  # noqa: BLE001 - the SDK may wrap it in groups
                found = mcp_error_in(e)
                if found is None:
                    raise
                assert "nobody" in str(found), found
    run(main())


async def _names_if(session, wanted: set[str]):
    names = await tool_names(session)
    return names if wanted <= set(names) else None


def test_long_and_invalid_names_are_shortened_deterministically(world):
    long_name = "summarize_" + "very_" * 14 + "long_document"
    odd_name = "read.file/v2"
    world.start_backend("names", "--tool-name", long_name, "--tool-name", odd_name)

    async def main():
        async with stdio_gateway(world) as (s, _):
            long_exposed = expected_exposed("names", long_name)
            odd_exposed = expected_exposed("names", odd_name)
            assert len(long_exposed) == 64 and odd_exposed != f"names__{odd_name}"
            names = await async_wait_for(lambda: _names_if(s, {long_exposed, odd_exposed}), 20, "the shortened names")
            assert all(len(n) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", n) for n in names)
            assert text_of(await s.call_tool(long_exposed, {})) == f"names:{long_name}"
            assert text_of(await s.call_tool(odd_exposed, {})) == f"names:{odd_name}"
            # The backend's own name still works as a bare or qualified name.
            assert text_of(await s.call_tool(f"names.{odd_name}", {})) == f"names:{odd_name}"
            return names

    first = run(main())
    second = run(main())  # another gateway process: the same mapping
    assert first == second


# -- live updates, health, sessions (HTTP downstream) --------------------------------------------


def test_backend_registering_later_appears_and_is_callable(world):
    url = world.start_http_gateway()

    async def main():
        async with http_gateway(url, {"Authorization": f"Bearer {world.token}"}) as (s, notes):
            assert await tool_names(s) == ["instances_list"]
            before = notes.count("notifications/tools/list_changed")
            world.start_backend("late", "--tools", "hello", wait=False)
            await notes.wait("notifications/tools/list_changed", before, timeout=30)
            names = await async_wait_for(lambda: _names_if(s, {"late__hello"}), 10, "late__hello listed")
            assert "late__whoami" in names
            assert text_of(await s.call_tool("late__hello", {})) == "late:hello"
    run(main())


def test_backend_killed_mid_session_fails_fast_and_disappears(world):
    url = world.start_http_gateway()
    victim = world.start_backend("victim", "--tools", "work")
    world.start_backend("survivor")

    async def main():
        async with http_gateway(url, {"Authorization": f"Bearer {world.token}"}) as (s, notes):
            await async_wait_for(lambda: _names_if(s, {"victim__work", "survivor__whoami"}), 20, "both backends")
            assert text_of(await s.call_tool("victim__work", {})) == "victim:work"
            before = notes.count("notifications/tools/list_changed")
            victim.kill()
            started = time.monotonic()
            message = await call_error(s, "victim__work")
            elapsed = time.monotonic() - started
            assert "victim" in message, message
            assert elapsed < 5, f"the error took {elapsed:.2f} s"
            await notes.wait("notifications/tools/list_changed", before, timeout=10)
            names = await async_wait_for(
                lambda: _names_if_absent(s, "victim__work"), 10, "victim's tools gone")
            assert "survivor__whoami" in names
            assert text_of(await s.call_tool("survivor__echo", {"text": "still here"})) == "survivor:still here"
    run(main())


async def _names_if_absent(session, name: str):
    names = await tool_names(session)
    return names if name not in names else None


def test_backend_restarted_on_its_port_is_reinitialized(world):
    """The entry stays (registered by this test); the server process is SIGKILLed and started
    again on the same port, so the gateway's sessions with it get 404 and re-initialize."""
    url = world.start_http_gateway()
    first = world.start_backend("phoenix", register=False)
    with peer_registry.registered(path=world.registry, id="phoenix", url=f"http://127.0.0.1:{first.port}/mcp",
                                  transport="http", tools=["whoami", "count"]):
        async def main():
            async with http_gateway(url, {"Authorization": f"Bearer {world.token}"}) as (s, notes):
                await async_wait_for(lambda: _names_if(s, {"phoenix__count"}), 20, "phoenix listed")
                assert text_of(await s.call_tool("phoenix__count", {})) == "1"
                assert text_of(await s.call_tool("phoenix__count", {})) == "2"
                pid_before = text_of(await s.call_tool("phoenix__whoami", {}))
                first.kill()
                message = await call_error(s, "phoenix__count")
                assert "phoenix" in message, message
                # What the gateway saw is written back.
                wait_for(lambda: world.entries()["phoenix"]["health"]["status"] == "DOWN", 10, "phoenix DOWN")
                assert "gateway" in world.entries()["phoenix"]["health"].get("message", "")
                world.start_backend("phoenix", register=False, port=first.port)
                await async_wait_for(lambda: _names_if(s, {"phoenix__count"}), 20, "phoenix back")
                # The same downstream session carries on: a new upstream session, counting anew.
                assert text_of(await s.call_tool("phoenix__count", {})) == "1"
                assert text_of(await s.call_tool("phoenix__whoami", {})) != pid_before
                wait_for(lambda: world.entries()["phoenix"]["health"]["status"] == "HEALTHY", 10, "phoenix HEALTHY")
        run(main())
    log = world.gateway_log()
    assert "backend unreachable" in log and "phoenix" in log


def test_each_downstream_session_has_its_own_upstream_session(world):
    url = world.start_http_gateway()
    world.start_backend("counter")
    headers = {"Authorization": f"Bearer {world.token}"}

    async def main():
        async with http_gateway(url, headers) as (a, _), http_gateway(url, headers) as (b, _):
            await async_wait_for(lambda: _names_if(a, {"counter__count"}), 20, "counter listed")
            assert text_of(await a.call_tool("counter__count", {})) == "1"
            assert text_of(await a.call_tool("counter__count", {})) == "2"
            assert text_of(await b.call_tool("counter__count", {})) == "1"
            assert text_of(await a.call_tool("counter__count", {})) == "3"
    run(main())


def test_down_in_registry_is_hidden_until_healthy(world):
    world.start_backend("flaky", "--tools", "ping2")
    world.start_backend("steady")

    async def main():
        async with stdio_gateway(world) as (s, notes):
            await async_wait_for(lambda: _names_if(s, {"flaky__ping2", "steady__whoami"}), 20, "both listed")
            before = notes.count("notifications/tools/list_changed")
            world.cli("health", "flaky", "DOWN", "maintenance")
            await notes.wait("notifications/tools/list_changed", before, timeout=10)
            await async_wait_for(lambda: _names_if_absent(s, "flaky__ping2"), 10, "flaky hidden")
            message = await call_error(s, "ping2")
            assert "ping2" in message
            world.cli("health", "flaky", "HEALTHY")
            await async_wait_for(lambda: _names_if(s, {"flaky__ping2"}), 10, "flaky shown again")
    run(main())


def test_progress_is_forwarded_and_backend_list_changed_too(world):
    world.start_backend("grower")

    async def main():
        async with stdio_gateway(world) as (s, notes):
            await async_wait_for(lambda: _names_if(s, {"grower__grow"}), 20, "grower listed")
            steps = []

            async def progress(p, total, message):
                steps.append((p, total))
            assert text_of(await s.call_tool("grower__slow", {"seconds": 0.2}, progress_callback=progress)) == "slept 0.2"
            assert steps == [(float(i), 5.0) for i in range(1, 6)]
            before = notes.count("notifications/tools/list_changed")
            assert text_of(await s.call_tool("grower__grow", {})) == "grown"
            await notes.wait("notifications/tools/list_changed", before, timeout=10)
            await async_wait_for(lambda: _names_if(s, {"grower__extra"}), 10, "grower__extra listed")
            assert text_of(await s.call_tool("grower__extra", {})) == "grower:extra"
    run(main())


def test_entry_headers_are_sent_and_never_shown(world):
    world.start_backend("locked", "--bearer", "s3cret-backend-token-0123456789abcdef")

    async def main():
        async with stdio_gateway(world) as (s, _):
            await async_wait_for(lambda: _names_if(s, {"locked__whoami"}), 20, "locked listed")
            assert text_of(await s.call_tool("locked__echo", {"text": "in"})) == "locked:in"
            listing = text_of(await s.call_tool("instances_list", {}))
            assert "s3cret" not in listing and "locked" in listing
    run(main())


# -- context control ---------------------------------------------------------------------------


def test_include_and_exclude(world):
    world.start_backend("files", "--tools", "read")
    world.start_backend("web", "--tools", "fetch")

    async def main(*args):
        async with stdio_gateway(world, *args) as (s, _):
            await s.send_ping()
            # The first tools/list already shows the servers registered when the gateway started.
            return await tool_names(s)

    only_files = run(main("--include", "files", "--exclude", "*__whoami"))
    assert "files__read" in only_files and not any(n.startswith("web__") for n in only_files)
    assert "files__whoami" not in only_files
    no_fetch = run(main("--exclude", "fetch", "--exclude", "instances_list"))
    assert "web__fetch" not in no_fetch and "web__echo" in no_fetch and "files__read" in no_fetch
    assert "instances_list" not in no_fetch


# -- HTTP safety -------------------------------------------------------------------------------


INIT = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).encode()


def post(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=INIT, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_http_is_safe_by_default(world):
    url = world.start_http_gateway()
    token_file = Path(world.registry).parent / "runtime" / "token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert str(token_file.parent) in world.gateway_log()
    good = {"Authorization": f"Bearer {world.token}"}
    assert post(url, {})[0] == 401
    assert post(url, {"Authorization": "Bearer " + "x" * 43})[0] == 401
    assert post(url, {**good, "Origin": "https://evil.example"})[0] == 403
    assert post(url, {**good, "Host": "evil.example:80"})[0] in (403, 421)
    status, headers, body = post(url, {**good, "Origin": "http://127.0.0.1"})
    assert status == 200, body
    assert json.loads(body)["result"]["capabilities"]["tools"]["listChanged"] is True
    assert any(k.lower() == "mcp-session-id" for k in headers)


def test_a_full_gateway_closes_the_least_recently_used_session(world):
    """At 1024 sessions an initialize closes the least recently used one, never one just opened
    (it once took the first idle session in table order: under load, often a session whose
    client was about to send notifications/initialized, which then got 404)."""
    import http.client
    url = world.start_http_gateway()
    m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    conn = http.client.HTTPConnection(m.group(1), int(m.group(2)), timeout=30)
    base = {"Authorization": f"Bearer {world.token}", "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream"}

    def send(body: dict, session: str | None = None) -> tuple[int, str | None]:
        headers = dict(base, **({"Mcp-Session-Id": session} if session else {}))
        conn.request("POST", m.group(3), json.dumps(body), headers)
        r = conn.getresponse()
        r.read()
        return r.status, r.getheader("Mcp-Session-Id")

    def opened() -> str:
        status, sid = send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        assert status == 200 and sid
        return sid

    def alive(sid: str) -> bool:
        return send({"jsonrpc": "2.0", "id": 2, "method": "ping"}, sid)[0] == 200

    first = opened()
    rest = [opened() for _ in range(1023)]  # 1024 sessions: the cap
    assert alive(first)  # the first is now the most recently used
    newest = [opened(), opened()]  # two more: the two least recently used make room
    assert not alive(rest[0]) and not alive(rest[1])
    assert alive(first) and alive(rest[2]) and all(alive(s) for s in newest)
    conn.close()


def test_http_no_auth_is_explicit(world):
    url = world.start_http_gateway("--no-auth")
    status, _, body = post(url, {})
    assert status == 200, body
    assert post(url, {"Origin": "https://evil.example"})[0] == 403
    bad = subprocess.run([world.binary, "gateway", "--registry", world.registry, "--no-auth"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "--no-auth" in bad.stderr


# -- --config: the supervisor in the same process ------------------------------------------------


def test_config_runs_supervised_stdio_servers_too(world):
    echo_server = ROOT / "tests" / "supervise" / "servers" / "echo_server.py"
    config = world.tmp / "servers-config.json"
    config.write_text(json.dumps({"mcpServers": {"sup": {"command": sys.executable, "args": [str(echo_server)],
                                                        "env": {"PYTHONDONTWRITEBYTECODE": "1"}}}}))
    world.start_backend("self")

    async def main():
        async with stdio_gateway(world, "--config", str(config)) as (s, _):
            names = await async_wait_for(lambda: _names_if(s, {"sup__echo", "self__echo"}), 60, "supervised and self-registered")
            assert "sup__add" in names
            assert text_of(await s.call_tool("sup__echo", {"text": "via bridge"})) == "via bridge"
            assert text_of(await s.call_tool("self__echo", {"text": "direct"})) == "self:direct"
            entry = world.entries()["sup"]
            assert entry["transport"] == "http" and entry["url"].startswith("http://127.0.0.1:")
    run(main())
    # The client closed stdin: the gateway stopped, and its supervised server's entry went with it.
    wait_for(lambda: "sup" not in world.entries(), 30, "the supervised entry removed")
    assert "self" in world.entries()


@pytest.mark.parametrize("mode", ["in-process", "over-http"])
def test_supervised_servers_in_process_as_over_their_bridges(world, mode):
    """The gateway reaches the servers of its own --config in process (no loopback HTTP);
    --supervised-over-http goes through their bridges instead. Both must behave the same:
    a process per downstream session (or one shared), progress, a backend's own list_changed,
    a call timeout that cancels the request in the server, and a process SIGKILLed mid-session
    restarted with the session carrying on."""
    echo_server = ROOT / "tests" / "supervise" / "servers" / "echo_server.py"
    config = world.tmp / "servers-config.json"
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    config.write_text(json.dumps({"mcpServers": {
        "own": {"command": sys.executable, "args": [str(echo_server)], "env": env},
        "pool": {"command": sys.executable, "args": [str(echo_server)], "env": env, "shared": True}}}))
    extra = ["--config", str(config), "--call-timeout", "2"] + (["--supervised-over-http"] if mode == "over-http" else [])
    url = world.start_http_gateway(*extra)
    headers = {"Authorization": f"Bearer {world.token}"}

    async def main():
        async with http_gateway(url, headers) as (a, notes), http_gateway(url, headers) as (b, _):
            await async_wait_for(lambda: _names_if(a, {"own__count", "pool__count"}), 60, "both supervised servers")
            # One process per downstream session for "own", one for everyone for "pool".
            assert [text_of(await a.call_tool("own__count", {})) for _ in range(2)] == ["1", "2"]
            assert text_of(await b.call_tool("own__count", {})) == "1"
            assert text_of(await a.call_tool("pool__count", {})) == "1"
            assert text_of(await b.call_tool("pool__count", {})) == "2"
            pid_a = text_of(await a.call_tool("own__whoami", {}))
            assert pid_a != text_of(await b.call_tool("own__whoami", {}))
            assert text_of(await a.call_tool("pool__whoami", {})) == text_of(await b.call_tool("pool__whoami", {}))
            # Progress comes back with the client's own token.
            steps = []

            async def progress(p, total, message):
                steps.append((p, total))
            assert text_of(await a.call_tool("own__slow", {"seconds": 0.2}, progress_callback=progress)) == "slept 0.2"
            assert steps == [(float(i), 10.0) for i in range(1, 11)]
            # Past --call-timeout: an error at once naming the backend; the session goes on.
            started = time.monotonic()
            message = await call_error(a, "own__slow", {"seconds": 20})
            assert "own" in message and time.monotonic() - started < 10, message
            assert text_of(await a.call_tool("own__echo", {"text": "after"})) == "after"
            # The server's own list_changed: fetched again, announced, callable.
            before = notes.count("notifications/tools/list_changed")
            assert text_of(await a.call_tool("pool__grow", {})) == "grown"
            await notes.wait("notifications/tools/list_changed", before, timeout=10)
            await async_wait_for(lambda: _names_if(a, {"pool__extra"}), 10, "pool__extra listed")
            assert text_of(await b.call_tool("pool__extra", {})) == "extra"
            # SIGKILL session a's own process: it is restarted (initialize replayed), a carries on.
            os.kill(int(pid_a), signal.SIGKILL)
            async def restarted():
                try:
                    return await a.call_tool("own__whoami", {})
                except BaseException as e:  # noqa: BLE001 - the call in flight during the restart fails
                    if mcp_error_in(e) is None:
                        raise
                    return None
            result = await async_wait_for(lambda: _ok(restarted()), 30, "own restarted for session a")
            assert text_of(result) != pid_a
            assert text_of(await a.call_tool("own__count", {})) == "1"
            assert text_of(await b.call_tool("own__count", {})) == "2"
    run(main())
    log = world.gateway_log()
    if mode == "in-process":
        assert "in process" in log, log[-2000:]
    else:
        assert "in process" not in log, log[-2000:]


async def _ok(pending):
    result = await pending
    return result if result is not None and not result.is_error else None


# -- the legacy HTTP+SSE transport upstream (MCP 2024-11-05) -------------------------------------


def test_sse_backend_is_aggregated_with_progress_and_list_changed(world):
    """A real MCPServer serving sse_app() (GET /sse, POST /messages/?session_id=...), registered
    with transport sse: its tools are shown and called like a streamable server's."""
    world.start_backend("legacy", "--transport", "sse", "--tools", "hello", "--prompts", "brief")
    entry = world.entries()["legacy"]
    assert entry["transport"] == "sse" and entry["url"].endswith("/sse"), entry

    async def main():
        async with stdio_gateway(world) as (s, notes):
            names = await async_wait_for(lambda: _names_if(s, {"legacy__hello", "legacy__whoami"}), 20, "the sse backend listed")
            assert "legacy__grow" in names
            assert text_of(await s.call_tool("legacy__hello", {})) == "legacy:hello"
            assert text_of(await s.call_tool("legacy.echo", {"text": "x"})) == "legacy:x"
            assert text_of(await s.call_tool("hello", {})) == "legacy:hello"
            got = await s.get_prompt("legacy__brief", {"topic": "t"})
            assert got.messages[0].content.text == "legacy:brief:t"
            steps = []

            async def progress(p, total, message):
                steps.append((p, total))
            assert text_of(await s.call_tool("legacy__slow", {"seconds": 0.2}, progress_callback=progress)) == "slept 0.2"
            assert steps == [(float(i), 5.0) for i in range(1, 6)]
            # The server's own list_changed (on its stream) makes the gateway fetch the list again.
            before = notes.count("notifications/tools/list_changed")
            assert text_of(await s.call_tool("legacy__grow", {})) == "grown"
            await notes.wait("notifications/tools/list_changed", before, timeout=10)
            await async_wait_for(lambda: _names_if(s, {"legacy__extra"}), 10, "legacy__extra listed")
            assert text_of(await s.call_tool("legacy__extra", {})) == "legacy:extra"
    run(main())


def test_sse_and_streamable_backends_side_by_side_and_sse_killed(world):
    url = world.start_http_gateway()
    world.start_backend("modern", "--tools", "fresh")
    legacy = world.start_backend("legacy", "--transport", "sse", "--tools", "old")
    headers = {"Authorization": f"Bearer {world.token}"}

    async def main():
        async with http_gateway(url, headers) as (a, notes), http_gateway(url, headers) as (b, _):
            await async_wait_for(lambda: _names_if(a, {"modern__fresh", "legacy__old"}), 20, "both backends")
            assert text_of(await a.call_tool("modern__fresh", {})) == "modern:fresh"
            assert text_of(await a.call_tool("legacy__old", {})) == "legacy:old"
            # A legacy session is its stream: each downstream session has its own with the backend.
            assert text_of(await a.call_tool("legacy__count", {})) == "1"
            assert text_of(await a.call_tool("legacy__count", {})) == "2"
            assert text_of(await b.call_tool("legacy__count", {})) == "1"
            assert text_of(await b.call_tool("modern__count", {})) == "1"
            before = notes.count("notifications/tools/list_changed")
            legacy.kill()
            started = time.monotonic()
            message = await call_error(a, "legacy__old")
            assert "legacy" in message, message
            assert time.monotonic() - started < 5
            await notes.wait("notifications/tools/list_changed", before, timeout=10)
            names = await async_wait_for(lambda: _names_if_absent(a, "legacy__old"), 10, "legacy's tools gone")
            assert "modern__fresh" in names
            assert text_of(await a.call_tool("modern__echo", {"text": "on"})) == "modern:on"
            assert text_of(await b.call_tool("modern__count", {})) == "2"
    run(main())


def test_sse_backend_restarted_on_its_port_is_reconnected(world):
    """The entry stays (registered by this test) while the legacy server is SIGKILLed: the
    gateway marks it DOWN and hides it, then, once a new process serves the same port, opens a
    new stream, initializes again and shows it; the downstream session carries on."""
    url = world.start_http_gateway()
    first = world.start_backend("relic", "--transport", "sse", register=False)
    with peer_registry.registered(path=world.registry, id="relic", url=f"http://127.0.0.1:{first.port}/sse",
                                  transport="sse", tools=["whoami", "count"]):
        async def main():
            async with http_gateway(url, {"Authorization": f"Bearer {world.token}"}) as (s, notes):
                await async_wait_for(lambda: _names_if(s, {"relic__count"}), 20, "relic listed")
                assert text_of(await s.call_tool("relic__count", {})) == "1"
                pid_before = text_of(await s.call_tool("relic__whoami", {}))
                before = notes.count("notifications/tools/list_changed")
                first.kill()
                message = await call_error(s, "relic__count")
                assert "relic" in message, message
                await notes.wait("notifications/tools/list_changed", before, timeout=10)
                wait_for(lambda: world.entries()["relic"]["health"]["status"] == "DOWN", 10, "relic DOWN")
                assert "gateway" in world.entries()["relic"]["health"].get("message", "")
                world.start_backend("relic", "--transport", "sse", register=False, port=first.port)
                await async_wait_for(lambda: _names_if(s, {"relic__count"}), 20, "relic back")
                assert text_of(await s.call_tool("relic__count", {})) == "1"
                assert text_of(await s.call_tool("relic__whoami", {})) != pid_before
                wait_for(lambda: world.entries()["relic"]["health"]["status"] == "HEALTHY", 10, "relic HEALTHY")
        run(main())


def test_sse_upstream_against_a_supervised_bridges_sse(world):
    """Both legacy sides of this project together: the gateway's SSE client against the /sse of
    a bridge it supervises (--config), registered by hand as a second, transport sse entry with
    the bridge's headers (its bearer token)."""
    echo_server = ROOT / "tests" / "supervise" / "servers" / "echo_server.py"
    config = world.tmp / "servers-config.json"
    config.write_text(json.dumps({"mcpServers": {"sup": {"command": sys.executable, "args": [str(echo_server)],
                                                        "env": {"PYTHONDONTWRITEBYTECODE": "1"}}}}))

    async def main():
        async with stdio_gateway(world, "--config", str(config)) as (s, _):
            await async_wait_for(lambda: _names_if(s, {"sup__echo"}), 60, "the supervised server")
            with open(world.registry) as f:
                entry = next(e for e in json.load(f)["servers"] if e["id"] == "sup")
            sse = entry["url"][: -len("/mcp")] + "/sse"
            with peer_registry.registered(path=world.registry, id="supsse", url=sse, transport="sse",
                                          headers=entry["headers"], tools=["echo"]):
                await async_wait_for(lambda: _names_if(s, {"supsse__echo", "supsse__whoami"}), 30, "the bridge's /sse as a backend")
                assert text_of(await s.call_tool("supsse__echo", {"text": "legacy both ways"})) == "legacy both ways"
                # Another session of the same bridge: the sse one has a process of its own.
                assert text_of(await s.call_tool("supsse__whoami", {})) != text_of(await s.call_tool("sup__whoami", {}))
    run(main())
