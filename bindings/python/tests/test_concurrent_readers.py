"""Readers racing writers in other processes (DESIGN.md, "Readers take no lock: a rename makes
them see the old file or the new one, never a mix")."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import peer_registry
from peer_registry import Registry

from _support import child_env, reap

# Rewrites the registry as fast as it can until killed; says "writing" after its first write.
WRITER = """
import sys, peer_registry
reg = peer_registry.Registry(sys.argv[1])
reg.set_health("busy", "HEALTHY", "first")
print("writing", flush=True)
while True:
    reg.set_health("busy", "HEALTHY", "again")
"""


def test_reads_never_fail_while_other_processes_write(registry_path: Path) -> None:
    with Registry(registry_path) as reg:
        reg.register({"id": "busy", "url": "http://127.0.0.1:9/mcp", "liveness": "none"})
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(registry_path)], env=child_env(),
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for w in writers:
            assert w.stdout is not None and w.stdout.readline() == "writing\n"
        rounds = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            with Registry(registry_path) as reader:  # open, get, list: each re-reads the file
                assert reader.get("busy")["id"] == "busy"
                assert [e["id"] for e in reader.list()] == ["busy"]
            rounds += 1
        assert rounds > 100, f"only {rounds} rounds: the writers were not racing anything"
    finally:
        for w in writers:
            reap(w)
