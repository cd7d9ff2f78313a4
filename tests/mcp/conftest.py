"""Fixtures for the MCP client tests: the peer-registry binary, a private registry, helpers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def peer_registry_bin() -> str:
    path = os.environ.get("PEER_REGISTRY_BIN")
    if not path:
        pytest.fail("PEER_REGISTRY_BIN is not set: run tests/mcp/run.sh (it builds peer-registry)")
    if not os.access(path, os.X_OK):
        pytest.fail(f"PEER_REGISTRY_BIN={path} is not an executable; build it: swift build --product peer-registry")
    return path


@pytest.fixture
def registry_path(tmp_path: Path) -> str:
    """servers.json in a fresh 0700 directory (the library refuses group/world-writable ones)."""
    directory = tmp_path / "registry"
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    return str(directory / "servers.json")


class CLI:
    """The peer-registry command line, run as its own process for each call."""

    def __init__(self, binary: str, registry: str) -> None:
        self.binary = binary
        self.registry = registry

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args, "--registry", self.registry],
            capture_output=True, text=True, timeout=30, check=check,
        )

    def register_static(self, server_id: str, *, url: str | None = None, tools: tuple[str, ...] = (),
                        resources: tuple[str, ...] = (), prompts: tuple[str, ...] = ()) -> dict:
        args = ["register", "--compact", "--static", "--id", server_id,
                "--url", url or f"http://127.0.0.1:9/{server_id}/mcp"]
        for t in tools:
            args += ["--tool", t]
        for r in resources:
            args += ["--resource", r]
        for p in prompts:
            args += ["--prompt", p]
        return json.loads(self.run(*args).stdout)


@pytest.fixture
def cli(peer_registry_bin: str, registry_path: str) -> CLI:
    return CLI(peer_registry_bin, registry_path)


@pytest.fixture(scope="session")
def binding_env() -> dict[str, str]:
    """Environment for a process using the Python binding of libpeerregistry."""
    lib = os.environ.get("PEER_REGISTRY_LIB", str(ROOT / "build" / "lib" / "libpeerregistry.so"))
    if not os.path.exists(lib):
        pytest.fail(f"{lib} not found: build it with `make lib` (tests/mcp/run.sh does)")
    env = dict(os.environ)
    env["PEER_REGISTRY_LIB"] = lib
    env["PYTHONPATH"] = str(ROOT / "bindings" / "python" / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env
