"""Fixtures for the gateway's tests: `peer-registry gateway` run for real on a private
registry; backends are real MCPServer streamable-HTTP (or legacy SSE) servers (servers/backend.py) that
register themselves through the library's Python binding and are started and SIGKILLed
here; the client is the official MCP Python SDK's ClientSession over stdio or streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BACKEND = HERE / "servers" / "backend.py"
PYTHON = sys.executable


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


async def async_wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


class Backend:
    def __init__(self, proc: subprocess.Popen, port: int, server_id: str) -> None:
        self.proc = proc
        self.port = port
        self.id = server_id

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class World:
    """A private registry, the backends started in it, and gateways run on it."""

    def __init__(self, binary: str, tmp: Path) -> None:
        self.binary = binary
        self.tmp = tmp
        directory = tmp / "registry"
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)
        self.registry = str(directory / "servers.json")
        self.backends: list[Backend] = []
        self.gateways: list[subprocess.Popen] = []
        self.env = dict(os.environ)
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"

    # -- backends

    def start_backend(self, server_id: str, *args: str, register: bool = True, port: int = 0,
                      wait: bool = True) -> Backend:
        cmd = [PYTHON, str(BACKEND), "--registry", self.registry, "--id", server_id, "--port", str(port), *args]
        if not register:
            cmd.append("--no-register")
        log = open(self.tmp / f"backend-{server_id}.log", "ab")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=self.env)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip():
            proc.wait()
            raise AssertionError(f"backend {server_id} did not start:\n{(self.tmp / f'backend-{server_id}.log').read_text()}")
        backend = Backend(proc, int(line), server_id)
        self.backends.append(backend)
        if register and wait:
            wait_for(lambda: server_id in self.entries(), 30, f"{server_id} registered")
        return backend

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, *args, "--registry", self.registry], capture_output=True, text=True,
                              timeout=30, check=check)

    def entries(self) -> dict[str, dict[str, Any]]:
        out = self.cli("list", "--json").stdout
        return {e["id"]: e for e in json.loads(out)["servers"]}

    # -- gateways

    def gateway_args(self, *extra: str) -> list[str]:
        return ["gateway", "--registry", self.registry, "--log-level", "info", *extra]

    def start_http_gateway(self, *extra: str) -> str:
        log = open(self.tmp / "gateway-http.log", "ab")
        proc = subprocess.Popen([self.binary, *self.gateway_args("--http", "0", *extra)], stdout=subprocess.PIPE,
                                stderr=log, env=self.env, start_new_session=True)
        self.gateways.append(proc)
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        if not url.startswith("http://127.0.0.1:"):
            proc.wait(timeout=10)
            raise AssertionError(f"gateway did not start (exit {proc.returncode}):\n{self.gateway_log()}")
        return url

    def gateway_log(self) -> str:
        out = ""
        for name in ("gateway-http.log", "gateway-stdio.log"):
            p = self.tmp / name
            if p.exists():
                out += p.read_text(errors="replace")
        return out

    @property
    def token(self) -> str:
        return (Path(self.registry).parent / "runtime" / "token").read_text().strip()

    def cleanup(self) -> None:
        for b in self.backends:
            b.kill()
        for g in self.gateways:
            if g.poll() is None:
                g.send_signal(signal.SIGTERM)
                try:
                    g.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    g.kill()
                    g.wait()


@pytest.fixture(scope="session")
def binary() -> str:
    path = os.environ.get("PEER_REGISTRY_BIN")
    if not path:
        pytest.fail("PEER_REGISTRY_BIN is not set: run tests/gateway/run.sh (it builds peer-registry)")
    return path


@pytest.fixture
def world(binary: str, tmp_path: Path):
    w = World(binary, tmp_path)
    yield w
    w.cleanup()


class Notifications:
    """list_changed notifications a client got, by method."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.event = asyncio.Event()

    async def handler(self, message: Any) -> None:
        inner = getattr(message, "root", message)
        method = getattr(inner, "method", None)
        if isinstance(method, str):
            self.seen.append(method)
            self.event.set()

    def count(self, method: str) -> int:
        return self.seen.count(method)

    async def wait(self, method: str, more_than: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.count(method) <= more_than:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {method} within {timeout} s (seen: {self.seen})")
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), remaining)
            except asyncio.TimeoutError:
                pass


@asynccontextmanager
async def stdio_gateway(world: World, *extra: str) -> AsyncIterator[tuple[Any, Notifications]]:
    """The gateway as a stdio MCP server, spawned by the SDK's stdio client."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    notes = Notifications()
    params = StdioServerParameters(command=world.binary, args=world.gateway_args(*extra), env=world.env)
    with open(world.tmp / "gateway-stdio.log", "a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, message_handler=notes.handler) as session:
                await session.initialize()
                yield session, notes


@asynccontextmanager
async def http_gateway(url: str, headers: dict[str, str]) -> AsyncIterator[tuple[Any, Notifications]]:
    """An SDK ClientSession over streamable HTTP to a running gateway."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    notes = Notifications()
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, message_handler=notes.handler) as session:
                await session.initialize()
                yield session, notes


def text_of(result: Any) -> str:
    assert not result.is_error, f"tool error: {result.content}"
    return result.content[0].text


async def tool_names(session: Any) -> list[str]:
    return sorted(t.name for t in (await session.list_tools()).tools)


def run(coro):
    return asyncio.run(coro)


def mcp_error_in(error: BaseException) -> Exception | None:
    from mcp.shared.exceptions import MCPError
    if isinstance(error, MCPError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = mcp_error_in(inner)
            if found is not None:
                return found
    return None
