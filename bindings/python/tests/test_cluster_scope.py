"""Cluster scope through the binding (docs/CLUSTER.md): list, resolve and watch of the other
machines' entries. The view is written here by hand in its documented format, with the agent
lock held through fcntl.flock as a running agent holds it; the real agent on a real etcd
cluster is tested in tests/cluster."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

import peer_registry
from peer_registry import Registry


def write_view(registry_path: Path, servers: list[dict], etcd: str = "connected") -> None:
    view = registry_path.with_name("servers.cluster.json")
    tmp = view.with_name(view.name + ".tmp")
    tmp.write_text(json.dumps({"version": 1, "generation": 1, "node": "here", "etcd": etcd, "revision": 5, "servers": servers}))
    os.chmod(tmp, 0o600)
    os.rename(tmp, view)


def remote(id: str, node: str, tools: list[str]) -> dict:
    return {"id": id, "node": node, "url": f"http://10.0.0.9:{9000 + len(tools)}/mcp", "liveness": "none",
            "scope": "cluster", "capabilities": {"tools": tools}}


@pytest.fixture
def agent_lock(registry_path: Path, reg: Registry):
    path = registry_path.with_name("servers.cluster.json.agent")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield fd
    os.close(fd)


def test_list_resolve_and_watch_with_cluster_scope(reg: Registry, registry_path: Path, agent_lock: int) -> None:
    reg.register({"id": "mine", "url": "http://127.0.0.1:1/mcp", "liveness": "none", "scope": "cluster",
                  "capabilities": {"tools": ["shared"]}})
    watch = reg.watch(scope="cluster")
    try:
        write_view(registry_path, [remote("far", "B", ["shared", "far-only"])])
        event = watch.next(timeout=5)
        assert event is not None and [(e["id"], e["node"]) for e in event["added"]] == [("far", "B")]
    finally:
        watch.close()
    assert [e["id"] for e in reg.list()] == ["mine"]
    listed = reg.list(scope="cluster")
    assert [(e["id"], e.get("node")) for e in listed] == [("mine", None), ("far", "B")]
    assert not any(e.get("stale") for e in listed)
    with pytest.raises(peer_registry.NotFoundError):
        reg.resolve_tool("far-only")
    assert reg.resolve_tool("far-only", scope="cluster")["node"] == "B"
    assert reg.resolve_tool("shared", scope="cluster")["id"] == "mine"  # local wins the tie
    with pytest.raises(peer_registry.InvalidArgumentError):
        reg.resolve_tool("shared", scope="galaxy")
    with pytest.raises(peer_registry.InvalidArgumentError):
        reg.list(scope="galaxy")


def test_remote_entries_are_stale_without_a_running_agent(reg: Registry, registry_path: Path) -> None:
    write_view(registry_path, [remote("far", "B", ["t"])])
    assert [e.get("stale") for e in reg.list(scope="cluster")] == [True]
