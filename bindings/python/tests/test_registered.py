"""peer_registry.registered(): registered for exactly the duration of a with block."""

from __future__ import annotations

from pathlib import Path

import pytest

import peer_registry
from peer_registry import Registry, registered

URL = "http://127.0.0.1:8123/mcp"


def test_entry_exists_inside_the_block_only(registry_path: Path, other: Registry) -> None:
    with registered(id="inside", url=URL, tools=["a", "b"], prompts=["p"], path=registry_path) as entry:
        assert entry["id"] == "inside"
        seen = other.get("inside")
        assert seen["url"] == URL
        assert seen["capabilities"]["tools"] == ["a", "b"]
        assert seen["capabilities"]["prompts"] == ["p"]
        assert other.resolve_tool("a")["id"] == "inside"
    with pytest.raises(peer_registry.NotFoundError):
        other.get("inside")


def test_entry_is_removed_when_the_block_raises(registry_path: Path, other: Registry) -> None:
    # "none" liveness: only an explicit unregister removes it, not closing the handle.
    with pytest.raises(RuntimeError, match="boom"):
        with registered(id="static", url=URL, liveness="none", path=registry_path):
            assert other.get("static")["liveness"] == "none"
            raise RuntimeError("boom")
    with pytest.raises(peer_registry.NotFoundError):
        other.get("static")


def test_uses_a_given_registry_and_leaves_it_open(reg: Registry, other: Registry) -> None:
    base = {"id": "given", "url": URL, "capabilities": {"resources": ["resource://given/"]}}
    with registered(base, registry=reg, tools=["t"], name="Given") as entry:
        assert entry["name"] == "Given"
        assert entry["capabilities"]["tools"] == ["t"]
        assert entry["capabilities"]["resources"] == ["resource://given/"]
        assert other.get("given")["id"] == "given"
    assert not reg.closed
    with pytest.raises(peer_registry.NotFoundError):
        other.get("given")


def test_unregistering_inside_the_block_is_fine(reg: Registry) -> None:
    with registered(id="early", url=URL, registry=reg):
        reg.unregister("early")
    with pytest.raises(peer_registry.NotFoundError):
        reg.get("early")


def test_registration_failure_raises_and_leaves_nothing(registry_path: Path, reg: Registry, other: Registry) -> None:
    reg.register({"id": "taken", "url": URL})
    with pytest.raises(peer_registry.AlreadyExistsError):
        with registered(id="taken", url=URL, path=registry_path):
            pytest.fail("the block must not run")
    assert other.get("taken")["id"] == "taken"  # the failed attempt did not unregister the holder's entry
