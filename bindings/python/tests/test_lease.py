"""Lease liveness: a registrant that dies, however it dies, disappears from the registry."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import peer_registry
from peer_registry import Registry

from _support import ids, reap, spawn_registrant


def test_sigkilled_registrant_disappears(reg: Registry, registry_path: Path) -> None:
    child = spawn_registrant(registry_path, "doomed")
    assert reg.get("doomed")["pid"] == child.pid
    assert reg.resolve_tool("childTool")["id"] == "doomed"

    child.send_signal(signal.SIGKILL)
    reap(child)
    assert child.returncode == -signal.SIGKILL

    with pytest.raises(peer_registry.NotFoundError):
        reg.get("doomed")
    assert "doomed" not in ids(reg.list())
    with pytest.raises(peer_registry.NotFoundError):
        reg.resolve_tool("childTool")
    # The id is free for the next registrant.
    assert reg.register({"id": "doomed", "url": "http://127.0.0.1:2/mcp"})["pid"] != child.pid


def test_live_registrant_holds_its_id(reg: Registry, registry_path: Path) -> None:
    child = spawn_registrant(registry_path, "alive")
    try:
        assert reg.prune() == 0
        with pytest.raises(peer_registry.AlreadyExistsError):
            reg.register({"id": "alive", "url": "http://127.0.0.1:2/mcp"})
    finally:
        reap(child)
