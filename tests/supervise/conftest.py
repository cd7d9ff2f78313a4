"""Fixtures for the supervisor's tests: `peer-registry supervise` run for real on a private
registry, real MCP servers (servers/), the official MCP Python SDK as the client, and the
process table (/proc) to see what runs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers"
PYTHON = sys.executable


def server_cmd(script: str, *args: str) -> dict[str, Any]:
    return {"command": PYTHON, "args": [str(SERVERS / script), *args]}


def processes_with_marker(marker: str) -> list[int]:
    """Pids of every process whose environment holds MARKER (children, grandchildren, keepers)."""
    found = []
    needle = f"SUPERVISE_TEST_MARKER={marker}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z" and needle in env.split(b"\0"):
            found.append(int(entry))
    return found


def zombies_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == b"Z" and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Supervise:
    """One `peer-registry supervise CONFIG` process and its registry."""

    def __init__(self, binary: str, tmp: Path) -> None:
        self.binary = binary
        self.dir = tmp
        self.registry_dir = tmp / "registry"
        self.registry_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.registry_dir, 0o700)
        self.registry = str(self.registry_dir / "servers.json")
        self.config_path = tmp / "supervise.json"
        self.log_path = tmp / "supervise.log"
        self.marker = uuid.uuid4().hex
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ)
        self.env["SUPERVISE_TEST_MARKER"] = self.marker
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"

    def write_config(self, servers: dict[str, dict[str, Any]], raw: str | None = None) -> None:
        text = raw if raw is not None else json.dumps({"mcpServers": self._with_marker(servers)}, indent=2)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def _with_marker(self, servers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        for name, spec in servers.items():
            spec = dict(spec)
            env = dict(spec.get("env", {}))
            env.setdefault("SUPERVISE_TEST_MARKER", self.marker)
            env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
            spec["env"] = env
            out[name] = spec
        return out

    def start(self, servers: dict[str, dict[str, Any]] | None = None, *extra: str, wait: list[str] | None = None,
              timeout: float = 60) -> None:
        if servers is not None:
            self.write_config(servers)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "supervise", str(self.config_path), "--registry", self.registry,
             "--log-dir", str(self.dir / "logs"), "--log-level", "debug", *extra],
            stdout=self.log, stderr=self.log, env=self.env,
            # The supervisor gets a process group of its own, so a test can SIGKILL exactly it.
            start_new_session=True,
        )
        for server_id in wait or []:
            self.wait_registered(server_id, timeout=timeout)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, *args, "--registry", self.registry], capture_output=True, text=True,
                              timeout=30, check=check)

    def entries(self) -> dict[str, dict[str, Any]]:
        """Live entries as `peer-registry list --json` shows them."""
        out = self.cli("list", "--json").stdout
        return {e["id"]: e for e in json.loads(out)["servers"]}

    def file_entry(self, server_id: str) -> dict[str, Any]:
        """The entry as stored (0600 file, read as its owner), with its secret headers."""
        with open(self.registry) as f:
            doc = json.load(f)
        for e in doc["servers"]:
            if e.get("id") == server_id:
                return e
        raise KeyError(server_id)

    def wait_registered(self, server_id: str, timeout: float = 60, health: str | None = "HEALTHY") -> dict[str, Any]:
        def ready():
            self.check_alive()
            e = self.entries().get(server_id)
            if e and (health is None or e.get("health", {}).get("status") == health):
                return e
            return None
        return wait_for(ready, timeout, f"{server_id} registered ({health})", interval=0.1)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"supervise exited with {self.proc.returncode}:\n{self.output()}")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def processes(self) -> list[int]:
        """Every process started for this test's servers (keepers, servers, their children):
        all carry the marker in their environment. The supervisor itself is not counted."""
        me = self.proc.pid if self.proc is not None else None
        return [p for p in processes_with_marker(self.marker) if p != me]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session")
def binary() -> str:
    path = os.environ.get("PEER_REGISTRY_BIN")
    if not path:
        pytest.fail("PEER_REGISTRY_BIN is not set: run tests/supervise/run.sh (it builds peer-registry)")
    return path


@pytest.fixture
def supervise(binary: str, tmp_path: Path):
    s = Supervise(binary, tmp_path)
    yield s
    s.cleanup()


@asynccontextmanager
async def mcp_session(sup: Supervise, server_id: str, *, headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """An official SDK ClientSession over streamable HTTP to the server's registered URL, with
    the entry's headers (its bearer token)."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    entry = sup.file_entry(server_id)
    async with create_mcp_http_client(headers=entry.get("headers") if headers is None else headers) as http:
        async with streamable_http_client(entry["url"], http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def sse_url(entry: dict[str, Any]) -> str:
    """The legacy HTTP+SSE URL of a bridge: its entry's /mcp URL with /sse instead."""
    assert entry["url"].endswith("/mcp"), entry["url"]
    return entry["url"][: -len("/mcp")] + "/sse"


@asynccontextmanager
async def sse_session(sup: Supervise, server_id: str, *, headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """An official SDK ClientSession over the legacy HTTP+SSE transport (mcp.client.sse) to the
    bridge's /sse, with the entry's headers (its bearer token)."""
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    entry = sup.file_entry(server_id)
    async with sse_client(sse_url(entry), headers=entry.get("headers") if headers is None else headers) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def text_of(result: Any) -> str:
    assert not result.is_error, f"tool error: {result.content}"
    return result.content[0].text


def run(coro):
    return asyncio.run(coro)


def mcp_error_in(error: BaseException) -> Exception | None:
    """The MCPError inside an exception (the SDK's task groups wrap it in ExceptionGroups)."""
    from mcp.shared.exceptions import MCPError
    if isinstance(error, MCPError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = mcp_error_in(inner)
            if found is not None:
                return found
    return None


async def initialize_error(sup: Supervise, server_id: str) -> str:
    """Opens a session expecting initialize to fail; returns the JSON-RPC error's message."""
    try:
        async with mcp_session(sup, server_id):
            pass
    except BaseException as e:  # noqa: BLE001 - looking inside groups
        found = mcp_error_in(e)
        if found is None:
            raise
        return str(found)
    raise AssertionError(f"initialize of {server_id} succeeded")
