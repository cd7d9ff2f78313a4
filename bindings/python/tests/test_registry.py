"""Every Registry method against a real registry file."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

import peer_registry
from peer_registry import Health, Registry

from _support import ids

URL = "http://127.0.0.1:8080/mcp"


def entry(id: str, **fields: object) -> dict:
    return {"id": id, "url": fields.pop("url", URL), **fields}


def test_register_fills_in_the_defaults(reg: Registry) -> None:
    stored = reg.register(entry("journey", capabilities={"tools": ["findTrips"]}))
    assert stored["id"] == "journey" and stored["url"] == URL
    assert stored["liveness"] == "lease"
    assert stored["pid"] == os.getpid()
    assert stored["transport"] == "http"
    assert stored["health"]["status"] == "UNKNOWN"
    assert stored["startedAt"].endswith("Z")
    assert stored["capabilities"]["tools"] == ["findTrips"]
    assert reg.get("journey") == stored


def test_transport_comes_from_the_url_scheme(reg: Registry) -> None:
    assert reg.register(entry("w", url="ws://127.0.0.1:9/ws"))["transport"] == "ws"


def test_fields_the_binding_does_not_know_are_kept(reg: Registry, other: Registry, registry_path: Path) -> None:
    reg.register(entry("x", metadata={"team": "trips", "n": [1, 2]}, futureField={"a": True}))
    got = other.get("x")
    assert got["metadata"] == {"team": "trips", "n": [1, 2]}
    assert got["futureField"] == {"a": True}  # type: ignore[typeddict-item]
    on_disk = json.loads(registry_path.read_text())
    assert on_disk["servers"][0]["futureField"] == {"a": True}


def test_registering_again_from_the_same_handle_replaces(reg: Registry) -> None:
    reg.register(entry("svc", name="Old"))
    reg.register(entry("svc", name="New"))
    assert reg.get("svc")["name"] == "New"
    assert ids(reg.list()) == ["svc"]


def test_entries_are_shared_through_the_file(reg: Registry, other: Registry) -> None:
    reg.register(entry("a"))
    assert other.get("a")["id"] == "a"
    other.register(entry("b", liveness="none"))
    assert ids(reg.list()) == ["a", "b"]


def test_unregister(reg: Registry, other: Registry) -> None:
    reg.register(entry("gone"))
    reg.unregister("gone")
    with pytest.raises(peer_registry.NotFoundError):
        other.get("gone")
    with pytest.raises(peer_registry.NotFoundError):
        reg.unregister("gone")


def test_close_drops_lease_entries_but_not_static_ones(registry_path: Path, other: Registry) -> None:
    with Registry(registry_path) as reg:
        reg.register(entry("leased"))
        reg.register(entry("static", liveness="none"))
        assert ids(other.list()) == ["leased", "static"]
    assert ids(other.list()) == ["static"]


# What the filters select and how resolution, health and TTL expiry behave are the core's,
# checked in every language by tests/conformance/cases.json; here: what this binding passes along.
@pytest.mark.parametrize("status", [Health.DEGRADED, "DEGRADED", "degraded", 2])
def test_list_keywords_reach_the_library_as_filters(reg: Registry, status: object) -> None:
    reg.register(entry("a", capabilities={"tools": ["t"], "prompts": ["p"], "resources": ["resource://a/"]}))
    reg.register(entry("b", url="ws://127.0.0.1:2/ws"))
    reg.set_health("b", Health.DEGRADED)
    assert ids(reg.list(status=status)) == ["b"]  # type: ignore[arg-type]
    assert ids(reg.list(healthy=False)) == ["a", "b"]
    assert ids(reg.list(transport="ws")) == ["b"]
    assert ids(reg.list(tool="t", prompt="p", resource="resource://a/x")) == ["a"]
    assert reg.list(tool="nobody") == []


def test_resolve_methods_pass_their_kind(reg: Registry) -> None:
    reg.register(entry("a", capabilities={"tools": ["x"]}))
    reg.register(entry("b", capabilities={"prompts": ["x"], "resources": ["x"]}))
    assert reg.resolve_tool("x")["id"] == "a"
    assert reg.resolve_prompt("x")["id"] == "b"
    assert reg.resolve_resource("x")["id"] == "b"


def test_generation_counts_writes(reg: Registry) -> None:
    start = reg.list_with_generation()
    assert start.servers == []
    reg.register(entry("a"))
    after_one = reg.list_with_generation()
    assert after_one.generation == start.generation + 1
    reg.set_health("a", "HEALTHY")
    reg.unregister("a")
    assert reg.list_with_generation().generation == start.generation + 3


@pytest.mark.parametrize("status", [Health.DEGRADED, "DEGRADED", "degraded", 2])
def test_set_health_accepts_enum_name_or_value(reg: Registry, status: object) -> None:
    reg.register(entry("h"))
    reg.set_health("h", status, "slow disk")  # type: ignore[arg-type]
    health = reg.get("h")["health"]
    assert health["status"] == "DEGRADED"
    assert health["message"] == "slow disk"
    assert health["lastCheck"].endswith("Z")


def test_set_health_without_message(reg: Registry) -> None:
    reg.register(entry("h"))
    reg.set_health("h", Health.HEALTHY)
    assert reg.get("h")["health"]["status"] == "HEALTHY"
    with pytest.raises(peer_registry.NotFoundError):
        reg.set_health("nobody", Health.HEALTHY)


def test_a_handle_can_be_shared_between_threads(reg: Registry, other: Registry) -> None:
    errors: list = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                name = f"t{n}-{i}"
                reg.register(entry(name))
                assert reg.get(name)["id"] == name
                reg.set_health(name, Health.HEALTHY)
                reg.unregister(name)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert other.list() == []


def test_closing_while_other_threads_call_gives_them_closed_error(reg: Registry) -> None:
    reg.register(entry("busy"))
    stop = threading.Event()
    outcomes: list = []

    def reader() -> None:
        while not stop.is_set():
            try:
                reg.get("busy")
            except peer_registry.ClosedError:
                outcomes.append("closed")
                return
            except BaseException as e:
                outcomes.append(e)
                return

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    reg.close()
    stop.set()
    for t in threads:
        t.join()
    assert outcomes == ["closed"] * 4


def test_close_is_idempotent_and_context_manager_closes(registry_path: Path) -> None:
    reg = Registry(registry_path)
    assert not reg.closed and "open" in repr(reg)
    reg.close()
    reg.close()
    assert reg.closed and "closed" in repr(reg)
    with Registry(registry_path) as r2:
        pass
    assert r2.closed


def test_path_accepts_pathlike_and_none_uses_the_environment(registry_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEER_REGISTRY_PATH", str(registry_path))
    with Registry() as by_env, Registry(registry_path) as by_path:
        by_env.register(entry("env"))
        assert by_path.get("env")["id"] == "env"
    assert registry_path.exists()


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def test_strings_and_errors_handed_out_are_freed(reg: Registry) -> None:
    # Every returned string goes back through peerreg_free and every error through
    # peerreg_error_free: 40,000 calls leaking ~300 bytes each would add ~12 MiB.
    reg.register(entry("leak", name="n" * 200))

    def churn(n: int) -> None:
        for _ in range(n):
            reg.get("leak")
            try:
                reg.get("missing")
            except peer_registry.NotFoundError:
                pass

    churn(5_000)  # warm up allocator pools and caches
    before = _rss_kib()
    churn(20_000)
    assert _rss_kib() - before < 4 * 1024
