"""`peer-registry supervise` end to end: real stdio MCP servers (the official SDK's MCPServer,
plus misbehaving ones), the official Python ClientSession over streamable HTTP against the URL
found in the registry, real signals, the process table checked in /proc."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import (PYTHON, SERVERS, Supervise, initialize_error, mcp_session, processes_with_marker, run, server_cmd, sse_session, sse_url,
                      text_of, wait_for, zombies_of)


def echo(*args: str, **options) -> dict:
    spec = server_cmd("echo_server.py", *args)
    spec.update(options)
    return spec


# --- configuration -------------------------------------------------------------------------

def test_config_error_names_position_and_starts_nothing(supervise: Supervise) -> None:
    supervise.write_config({}, raw='{"mcpServers": {\n  "ok": {"command": "%s", "args": ["%s"]},\n  "db": {"command": "%s",\n     "env": {"TOKEN": "${SUPERVISE_TEST_UNSET_VAR}"}}}}'
                           % (PYTHON, SERVERS / "echo_server.py", PYTHON))
    supervise.env.pop("SUPERVISE_TEST_UNSET_VAR", None)
    supervise.start()
    code = supervise.proc.wait(timeout=30)
    out = supervise.output()
    assert code == 1, out
    assert f"{supervise.config_path}:4:23:" in out, out
    assert 'server "db"' in out and "env.TOKEN" in out and "${SUPERVISE_TEST_UNSET_VAR} is not set" in out, out
    # Nothing was started, nothing registered: not even the valid server.
    assert supervise.processes() == []
    assert supervise.entries() == {}


def test_invalid_json_position(supervise: Supervise) -> None:
    supervise.write_config({}, raw='{"mcpServers": {"a": {"command": "x",}}}')
    supervise.start()
    assert supervise.proc.wait(timeout=30) == 1
    assert f"{supervise.config_path}:1:38: invalid JSON" in supervise.output()


def test_env_expansion_and_exact_environment(supervise: Supervise) -> None:
    supervise.env["SUPERVISE_TEST_GREETING"] = "hello"
    supervise.env["SUPERVISE_TEST_NOT_PASSED"] = "leak"
    supervise.start({"env": echo("--name", "${SUPERVISE_TEST_GREETING}-server", eager=True,
                                 env={"GREETING": "${SUPERVISE_TEST_GREETING}", "FALLBACK": "${SUPERVISE_TEST_NOPE:-dflt}"})},
                    wait=["env"])

    async def check():
        async with mcp_session(supervise, "env") as s:
            assert text_of(await s.call_tool("env", {"name": "GREETING"})) == "hello"
            assert text_of(await s.call_tool("env", {"name": "FALLBACK"})) == "dflt"
            # The child's environment is exactly the default set plus "env": nothing else leaks.
            assert text_of(await s.call_tool("env", {"name": "SUPERVISE_TEST_NOT_PASSED"})) == "<unset>"
            assert text_of(await s.call_tool("env", {"name": "PATH"})) == os.environ["PATH"]
    run(check())
    assert "hello-server" in (supervise.dir / "logs" / "env.log").read_text()


# --- registration, access ------------------------------------------------------------------

def test_registered_with_capabilities_and_found_by_resolve(supervise: Supervise) -> None:
    supervise.start({"echo": echo()}, wait=["echo"])
    entry = supervise.entries()["echo"]
    assert entry["transport"] == "http" and entry["url"].startswith("http://127.0.0.1:")
    assert set(entry["capabilities"]["tools"]) == {"echo", "add", "whoami", "env", "count", "slow", "grow"}
    assert entry["capabilities"]["prompts"] == ["greet"]
    assert set(entry["capabilities"]["resources"]) == {"echo://info", "echo://items/"}
    assert entry["liveness"] == "lease" and entry["pid"] == supervise.proc.pid
    assert entry["metadata"]["supervisor"]["state"] == "idle"
    # Lazy: after discovery no process runs until a session needs one.
    wait_for(lambda: len(supervise.processes()) == 0, 30, "the discovery process to stop")
    resolved = json.loads(supervise.cli("resolve", "tool", "whoami").stdout)
    assert resolved["id"] == "echo"

    async def call():
        async with mcp_session(supervise, resolved["id"]) as s:
            assert text_of(await s.call_tool("add", {"a": 2, "b": 40})) == "42"
            assert supervise.entries()["echo"]["metadata"]["supervisor"]["state"] == "running"
            res = await s.read_resource("echo://items/7")
            assert res.contents[0].text == "item 7"
    run(call())


def raw_post(url: str, headers: dict[str, str]) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_only_local_callers_with_the_token(supervise: Supervise) -> None:
    supervise.start({"echo": echo(eager=True)}, wait=["echo"])
    entry = supervise.file_entry("echo")
    url, auth = entry["url"], entry["headers"]["Authorization"]
    assert auth.startswith("Bearer ") and len(auth) > 40
    # A secret: in the 0600 file, never printed by list/get (unless --show-secrets).
    assert "headers" not in supervise.entries()["echo"]
    assert "Bearer" not in supervise.cli("get", "echo").stdout
    assert raw_post(url, {}) == 401
    assert raw_post(url, {"Authorization": "Bearer wrong"}) == 401
    assert raw_post(url, {"Authorization": auth, "Host": "evil.example:80"}) == 403
    assert raw_post(url, {"Authorization": auth, "Origin": "http://evil.example"}) == 403
    assert raw_post(url, {"Authorization": auth, "Origin": "http://localhost:3000"}) == 200


# --- sessions ------------------------------------------------------------------------------

def test_each_session_has_its_own_process_unless_shared(supervise: Supervise) -> None:
    supervise.start({"own": echo(), "shared": echo(shared=True)}, wait=["own", "shared"])

    async def two_sessions(server_id: str):
        async with mcp_session(supervise, server_id) as a, mcp_session(supervise, server_id) as b:
            pa = text_of(await a.call_tool("whoami", {}))
            pb = text_of(await b.call_tool("whoami", {}))
            ca = [text_of(await a.call_tool("count", {})) for _ in range(2)]
            cb = text_of(await b.call_tool("count", {}))
            return pa, pb, ca, cb

    pa, pb, ca, cb = run(two_sessions("own"))
    assert pa != pb, "two sessions shared one process"
    assert ca == ["1", "2"] and cb == "1", "state leaked between sessions"
    # The session's process is stopped when the session ends.
    wait_for(lambda: str(pa) not in " ".join(map(str, supervise.processes())), 30, "the session's process to stop")

    pa, pb, ca, cb = run(two_sessions("shared"))
    assert pa == pb, "shared: one process for both sessions"
    assert ca == ["1", "2"] and cb == "3"


def test_fifty_concurrent_sessions(supervise: Supervise) -> None:
    supervise.start({"many": echo(shared=True, eager=True)}, wait=["many"])

    async def one(i: int):
        async with mcp_session(supervise, "many") as s:
            for k in range(5):
                assert text_of(await s.call_tool("echo", {"text": f"{i}-{k}"})) == f"{i}-{k}"
            return text_of(await s.call_tool("whoami", {}))

    async def all_of_them():
        return await asyncio.gather(*(one(i) for i in range(50)))

    pids = run(all_of_them())
    assert len(pids) == 50 and len(set(pids)) == 1


def test_request_timeout_is_a_json_rpc_error_and_progress_is_forwarded(supervise: Supervise) -> None:
    supervise.start({"slow": echo(requestTimeout=1.5, eager=True)}, wait=["slow"])

    async def check():
        async with mcp_session(supervise, "slow") as s:
            seen = []

            async def progress(p, total, message):
                seen.append(p)
            assert text_of(await s.call_tool("slow", {"seconds": 0.3}, progress_callback=progress)) == "slept 0.3"
            assert seen == [float(i) for i in range(1, 11)]
            started = time.monotonic()
            from mcp.shared.exceptions import MCPError
            with pytest.raises(MCPError, match="no answer from the server within 1.5 s"):
                await s.call_tool("slow", {"seconds": 5})
            assert time.monotonic() - started < 4
            # The session goes on.
            assert text_of(await s.call_tool("echo", {"text": "after"})) == "after"
    run(check())


def test_idle_session_expires_and_its_process_stops(supervise: Supervise) -> None:
    supervise.start({"idle": echo(idleTimeout=1.0)}, wait=["idle"])
    wait_for(lambda: supervise.processes() == [], 30, "the discovery process to stop")

    async def check():
        from mcp.shared.exceptions import MCPError
        async with mcp_session(supervise, "idle") as s:
            pid = int(text_of(await s.call_tool("whoami", {})))
            assert pid in supervise.processes()
            await asyncio.sleep(2.5)
            # Expired after 1 s; the process was then stopped (its exit may take a moment on a busy machine).
            wait_for(lambda: pid not in supervise.processes(), 15, "the expired session's process to stop")
            with pytest.raises(MCPError):
                await s.call_tool("whoami", {})
    run(check())
    assert "session expired" in supervise.output()


# --- failures ------------------------------------------------------------------------------

def test_crash_restarts_with_initialize_replayed(supervise: Supervise) -> None:
    supervise.start({"crashy": echo("--crash-after", "3", restartDelay=0.1)}, wait=["crashy"])

    async def check():
        from mcp.shared.exceptions import MCPError
        async with mcp_session(supervise, "crashy") as s:
            first = text_of(await s.call_tool("whoami", {}))
            assert text_of(await s.call_tool("echo", {"text": "x"})) == "x"
            crashed = time.monotonic()
            with pytest.raises(MCPError, match="process"):
                await s.call_tool("echo", {"text": "boom"})  # third call: the server exits
            assert time.monotonic() - crashed < 2, "the in-flight request was not failed at once"
            # Same session, new process: initialize was replayed by the supervisor.
            second = text_of(await s.call_tool("whoami", {}))
            serving_again = time.monotonic() - crashed
            assert second != first
            return serving_again
    elapsed = run(check())
    print(f"crash -> serving again: {elapsed:.2f} s")
    entry = supervise.entries()["crashy"]
    assert entry["metadata"]["supervisor"]["restarts"] >= 1
    assert "crashing on purpose" in (supervise.dir / "logs" / "crashy.log").read_text()


def test_crash_loop_goes_down_with_stderr_and_fails_fast(supervise: Supervise) -> None:
    supervise.start({"broken": {**server_cmd("dies_at_start.py"), "maxRestarts": 2, "restartDelay": 0.05}})
    supervise.wait_registered("broken", timeout=30, health=None)

    def attempt() -> str:
        return run(initialize_error(supervise, "broken"))

    messages = [attempt() for _ in range(3)]
    entry = wait_for(lambda: (e := supervise.entries()["broken"])["health"]["status"] == "DOWN" and e, 30, "health DOWN")
    assert "missing API key FOO_API_KEY" in entry["health"]["message"]
    assert entry["metadata"]["supervisor"]["state"] == "crash-loop"
    started = time.monotonic()
    message = attempt()
    assert time.monotonic() - started < 3
    assert "crash loop" in message and "missing API key" in message, message
    assert all("missing API key" in m for m in messages), messages


def test_server_that_never_answers_initialize(supervise: Supervise) -> None:
    supervise.start({"mute": {**server_cmd("never_initializes.py"), "startTimeout": 1, "stopTimeout": 0.5}})
    supervise.wait_registered("mute", timeout=30, health=None)

    started = time.monotonic()
    message = run(initialize_error(supervise, "mute"))
    assert "initialize failed: no answer from the server within 1 s (startTimeout)" in message, message
    assert "never_initializes: reading and ignoring stdin" in message, message
    assert time.monotonic() - started < 5
    wait_for(lambda: supervise.processes() == [], 10, "the mute processes to be stopped")


def test_stderr_flood_is_bounded(supervise: Supervise) -> None:
    supervise.start({"noisy": echo("--flood-stderr", eager=True)}, wait=["noisy"])

    async def check():
        async with mcp_session(supervise, "noisy") as s:
            for i in range(20):
                assert text_of(await s.call_tool("echo", {"text": str(i)})) == str(i)
    run(check())
    time.sleep(2)
    logs = supervise.dir / "logs"
    size = sum(p.stat().st_size for p in logs.glob("noisy.log*"))
    assert size <= 2 * (8 << 20) + 65536, f"{size} bytes of log"
    supervise.check_alive()


def test_sigterm_ignored_then_sigkill(supervise: Supervise) -> None:
    supervise.start({"stubborn": echo("--ignore-sigterm", eager=True, stopTimeout=1)}, wait=["stubborn"])
    assert supervise.processes()
    started = time.monotonic()
    assert supervise.stop(signal.SIGTERM) == 0
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 10, elapsed
    assert supervise.processes() == []
    assert supervise.entries() == {}
    assert "stopped" in supervise.output() and "SIGKILL" in (supervise.dir / "logs" / "stubborn.log").read_text()


def test_sigkill_of_the_supervisor_leaves_no_process(supervise: Supervise) -> None:
    # A server whose real work runs in a grandchild (sh -> python), one that ignores SIGTERM,
    # and a per-session process with a live session.
    grandchild = {"command": "/bin/sh", "args": ["-c", f"{PYTHON} {SERVERS / 'echo_server.py'} --name grand; true"], "eager": True}
    supervise.start({"grand": grandchild, "stubborn": echo("--ignore-sigterm", eager=True), "own": echo()},
                    wait=["grand", "stubborn", "own"])

    async def hold():
        async with mcp_session(supervise, "own") as s:
            text_of(await s.call_tool("whoami", {}))
            before = supervise.processes()
            assert len(before) >= 5  # keepers + sh + python x3
            os.kill(supervise.proc.pid, signal.SIGKILL)
            supervise.proc.wait()
            wait_for(lambda: supervise.processes() == [], 10, "every supervised process to die")
    try:
        run(hold())
    except BaseException as e:  # the session's connection breaks when the supervisor dies
        if supervise.processes():
            raise
        if not isinstance(e, (Exception, BaseExceptionGroup)):
            raise
    assert supervise.processes() == []
    # The leases went with the supervisor: the entries are gone at once.
    assert supervise.entries() == {}


def test_no_zombies(supervise: Supervise) -> None:
    supervise.start({"crashy": echo("--crash-after", "1", restartDelay=0.05, maxRestarts=50)}, wait=["crashy"])

    async def crash_a_few():
        from mcp.shared.exceptions import MCPError
        async with mcp_session(supervise, "crashy") as s:
            for _ in range(3):
                with pytest.raises(MCPError):
                    await s.call_tool("echo", {"text": "x"})
    run(crash_a_few())
    time.sleep(0.5)
    assert zombies_of(supervise.proc.pid) == []


# --- reload --------------------------------------------------------------------------------

def test_reload_changes_only_what_changed(supervise: Supervise) -> None:
    servers = {"keep": echo(eager=True), "change": echo(eager=True), "drop": echo(eager=True)}
    supervise.start(servers, wait=["keep", "change", "drop"])
    keep_pid = supervise.entries()["keep"]["metadata"]["supervisor"]
    keep_procs = set(supervise.processes())
    url_keep = supervise.entries()["keep"]["url"]

    # An invalid edit keeps everything running and says why.
    supervise.write_config({}, raw='{"mcpServers": {"keep": {"command": 1}}}')
    wait_for(lambda: "configuration not reloaded" in supervise.output(), 10, "the invalid edit to be reported")
    assert set(supervise.entries()) == {"keep", "change", "drop"}

    servers = {"keep": echo(eager=True), "change": echo("--name", "changed", eager=True), "new": echo(eager=True)}
    supervise.write_config(servers)
    wait_for(lambda: set(supervise.entries()) == {"keep", "change", "new"}, 60, "added and removed servers")
    supervise.wait_registered("change")
    supervise.wait_registered("new")
    assert supervise.entries()["keep"]["url"] == url_keep
    # keep's processes are the same ones; drop's are gone.
    assert set(supervise.processes()) & keep_procs
    assert "changed" in (supervise.dir / "logs" / "change.log").read_text()
    assert keep_pid is not None


def test_tool_list_changed_updates_the_entry(supervise: Supervise) -> None:
    supervise.start({"growing": echo(eager=True)}, wait=["growing"])
    assert "extra" not in supervise.entries()["growing"]["capabilities"]["tools"]

    async def grow():
        async with mcp_session(supervise, "growing") as s:
            assert text_of(await s.call_tool("grow", {})) == "grown"
            wait_for(lambda: "extra" in supervise.entries()["growing"]["capabilities"]["tools"], 30, "the new tool in the entry")
    run(grow())
    assert json.loads(supervise.cli("resolve", "tool", "extra").stdout)["id"] == "growing"


# --- the legacy HTTP+SSE transport (MCP 2024-11-05) on the same port ------------------------

def raw_sse_get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """GET an SSE URL; the status and, for 200, the first event's text (then the stream is closed)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers={"Accept": "text/event-stream", **headers})
        response = conn.getresponse()
        if response.status != 200:
            return response.status, response.read().decode(errors="replace")
        first = b""
        while not first.endswith(b"\n\n"):
            first += response.readline()
        return 200, first.decode()
    finally:
        conn.close()


def raw_post_to(url: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_legacy_sse_client_lists_calls_and_times_out(supervise: Supervise) -> None:
    supervise.start({"echo": echo(requestTimeout=1.5)}, wait=["echo"])
    entry = supervise.entries()["echo"]
    # One entry per server: transport http, the /mcp URL; /sse is on the same port.
    assert entry["transport"] == "http" and entry["url"].endswith("/mcp")

    async def check():
        from mcp.shared.exceptions import MCPError
        async with sse_session(supervise, "echo") as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            assert {"echo", "add", "whoami", "slow"} <= tools
            assert text_of(await s.call_tool("add", {"a": 2, "b": 40})) == "42"
            assert supervise.entries()["echo"]["metadata"]["supervisor"]["sessions"] == 1
            seen = []

            async def progress(p, total, message):
                seen.append(p)
            assert text_of(await s.call_tool("slow", {"seconds": 0.3}, progress_callback=progress)) == "slept 0.3"
            assert seen == [float(i) for i in range(1, 11)]
            res = await s.read_resource("echo://items/7")
            assert res.contents[0].text == "item 7"
            assert (await s.get_prompt("greet", {"name": "sse"})).messages[0].content.text == "Hello, sse!"
            with pytest.raises(MCPError, match="no answer from the server within 1.5 s"):
                await s.call_tool("slow", {"seconds": 5})
            assert text_of(await s.call_tool("echo", {"text": "after"})) == "after"
    run(check())


def test_legacy_sse_under_the_same_policy(supervise: Supervise) -> None:
    supervise.start({"echo": echo(eager=True)}, wait=["echo"])
    entry = supervise.file_entry("echo")
    url, auth = sse_url(entry), entry["headers"]["Authorization"]
    token = auth.split(" ", 1)[1]
    assert raw_sse_get(url, {})[0] == 401
    assert raw_sse_get(url, {"Authorization": "Bearer wrong"})[0] == 401
    assert raw_sse_get(url, {"Authorization": auth, "Origin": "http://evil.example"})[0] == 403
    assert raw_sse_get(url, {"Authorization": auth, "Host": "evil.example:80"})[0] == 403
    status, first = raw_sse_get(url, {"Authorization": auth, "Origin": "http://localhost:3000"})
    assert status == 200 and first.startswith("event: endpoint\ndata: /messages?session_id="), first
    assert "token=" not in first
    # Given the URL with ?token= (as an EventSource must), the endpoint carries it too.
    status, first = raw_sse_get(url + "?token=" + token, {})
    assert status == 200 and first.rstrip().endswith("&token=" + token), first
    messages = url[: -len("/sse")] + "/messages"
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
    assert raw_post_to(messages + "?session_id=nope", init, {}) == 401
    assert raw_post_to(messages + "?session_id=nope", init, {"Authorization": auth, "Origin": "http://evil.example"}) == 403
    assert raw_post_to(messages + "?session_id=nope", init, {"Authorization": auth}) == 404
    assert raw_post_to(messages, init, {"Authorization": auth}) == 400

    async def refused():
        async with sse_session(supervise, "echo", headers={}):
            pass
    with pytest.raises(BaseException) as caught:
        run(refused())
    assert "401" in repr(caught.value), repr(caught.value)


def test_legacy_sse_sessions_have_their_own_processes_unless_shared(supervise: Supervise) -> None:
    supervise.start({"own": echo(), "shared": echo(shared=True)}, wait=["own", "shared"])

    async def sessions(server_id: str):
        async with sse_session(supervise, server_id) as a, sse_session(supervise, server_id) as b, \
                mcp_session(supervise, server_id) as c:
            pa = text_of(await a.call_tool("whoami", {}))
            pb = text_of(await b.call_tool("whoami", {}))
            pc = text_of(await c.call_tool("whoami", {}))
            ca = [text_of(await a.call_tool("count", {})) for _ in range(2)]
            cb = text_of(await b.call_tool("count", {}))
            return {pa, pb, pc}, ca, cb

    pids, ca, cb = run(sessions("own"))
    assert len(pids) == 3, "two legacy sessions and a streamable one: a process each"
    assert ca == ["1", "2"] and cb == "1", "state leaked between sessions"
    pids, ca, cb = run(sessions("shared"))
    assert len(pids) == 1, "shared: one process for every session, legacy or not"
    assert ca == ["1", "2"] and cb == "3"


def test_closing_the_sse_stream_ends_the_session(supervise: Supervise) -> None:
    supervise.start({"own": echo(), "idle": echo(idleTimeout=1.0)}, wait=["own", "idle"])
    wait_for(lambda: supervise.processes() == [], 30, "the discovery processes to stop")

    async def open_and_close():
        async with sse_session(supervise, "own") as s:
            pid = int(text_of(await s.call_tool("whoami", {})))
            assert pid in supervise.processes()
            assert supervise.entries()["own"]["metadata"]["supervisor"]["sessions"] == 1
        return pid
    pid = run(open_and_close())
    # The client closed its stream: the session ended and its process was stopped.
    wait_for(lambda: pid not in supervise.processes(), 15, "the session's process to stop")
    wait_for(lambda: supervise.entries()["own"]["metadata"]["supervisor"]["sessions"] == 0, 10, "no session left")

    seen: dict[str, object] = {}

    async def expire():
        async with sse_session(supervise, "idle") as s:
            seen["pid"] = int(text_of(await s.call_tool("whoami", {})))
            await asyncio.sleep(2.5)
            # Expired after 1 s without a request: the supervisor closed the stream (and the process).
            try:
                await asyncio.wait_for(s.call_tool("whoami", {}), 10)
                seen["call"] = "answered"
            except Exception as e:  # noqa: BLE001 - whatever the SDK makes of the ended stream
                seen["call"] = repr(e)
    try:
        run(expire())
    except Exception:  # noqa: BLE001 - the SDK's task group may report the ended stream on the way out
        pass
    assert seen.get("call") not in (None, "answered"), seen
    wait_for(lambda: seen["pid"] not in supervise.processes(), 15, "the expired session's process to stop")
    assert "session expired" in supervise.output()
    print(f"call after expiry: {seen['call']}")
