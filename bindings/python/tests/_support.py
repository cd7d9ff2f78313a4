"""Helpers shared by the tests: child processes that use the binding, and polling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, TypeVar

import peer_registry

TESTS = Path(__file__).resolve().parent
PACKAGE_SRC = TESTS.parent / "src"
REPO = TESTS.parents[2]
HEADER = REPO / "include" / "peer_registry.h"

T = TypeVar("T")

# A child that registers one lease entry through the binding, says so, and holds the lease
# until its stdin closes (or it is killed).
REGISTER_AND_HOLD = """
import sys, peer_registry
reg = peer_registry.Registry(sys.argv[1])
reg.register({"id": sys.argv[2], "url": "http://127.0.0.1:9/mcp",
              "capabilities": {"tools": ["childTool"]}})
print("registered", flush=True)
sys.stdin.read()
reg.close()
"""


def child_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment for a child Python using this package and the library loaded here."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_SRC), env.get("PYTHONPATH")]))
    env[peer_registry._lib.LIB_ENV] = peer_registry.load_library().path
    env.update(extra or {})
    return env


def spawn_python(code: str, *args: str, env: Optional[Dict[str, str]] = None) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env if env is not None else child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def spawn_registrant(registry_path: Path, server_id: str) -> "subprocess.Popen[str]":
    """Start a child holding a lease entry ``server_id``; returns once it is registered."""
    child = spawn_python(REGISTER_AND_HOLD, str(registry_path), server_id)
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "registered":
        child.kill()
        _, err = child.communicate(timeout=10)
        raise AssertionError(f"child failed to register: {line!r} {err}")
    return child


def run_python(code: str, *args: str, env: Optional[Dict[str, str]] = None, timeout: float = 60) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env if env is not None else child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(predicate: Callable[[], Optional[T]], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def ids(entries: List[peer_registry.ServerEntry]) -> List[str]:
    return sorted(e["id"] for e in entries)


def reap(child: "subprocess.Popen[str]") -> None:
    """Kill ``child`` if it still runs, wait for it and close its pipes."""
    if child.poll() is None:
        child.kill()
    child.wait()
    for pipe in (child.stdin, child.stdout, child.stderr):
        if pipe is not None:
            pipe.close()
