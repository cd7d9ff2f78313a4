"""peer_registry.aio: coroutines that never block the event loop, even while a write waits
seconds for the registry's lock held by another process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import List

import pytest

import peer_registry
from peer_registry.aio import AsyncRegistry, registered

from _support import reap, spawn_python

URL = "http://127.0.0.1:9/mcp"

# Holds the registry's write lock (flock, as the library takes it) for argv[2] seconds.
HOLD_LOCK_FOR = """
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


async def ticking(stop: asyncio.Event, gaps: List[float]) -> None:
    """Records the longest stretches the loop could not run a 10 ms timer."""
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


def test_a_write_waiting_5_s_for_the_lock_does_not_freeze_the_loop(
    registry_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEER_REGISTRY_LOCK_TIMEOUT_MS", "20000")  # wait for the holder, do not fail
    registry_path.parent.mkdir(parents=True, exist_ok=True)
    with peer_registry.Registry(registry_path) as setup:  # creates the directory and lock file
        setup.list()
    holder = spawn_python(HOLD_LOCK_FOR, str(registry_path) + ".lock", "5")

    async def main() -> None:
        assert holder.stdout is not None
        assert (await asyncio.get_running_loop().run_in_executor(None, holder.stdout.readline)).strip() == "locked"
        stop = asyncio.Event()
        gaps: List[float] = []
        ticker = asyncio.ensure_future(ticking(stop, gaps))
        async with AsyncRegistry(registry_path) as reg:
            started = time.monotonic()
            entry = await reg.register({"id": "patient", "url": URL})
            waited = time.monotonic() - started
            stop.set()
            await ticker
            assert entry["id"] == "patient"
            assert waited >= 4.5, f"the write returned after {waited:.2f} s: it did not wait for the lock"
            # The loop ran its 10 ms timer all along (hundreds of times), never stalled.
            assert len(gaps) > 100, len(gaps)
            assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f} s"
            assert [e["id"] for e in await reg.list()] == ["patient"]

    try:
        asyncio.run(main())
    finally:
        reap(holder)


def test_a_lock_timeout_arrives_as_a_timeout_error(registry_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEER_REGISTRY_LOCK_TIMEOUT_MS", "300")
    registry_path.parent.mkdir(parents=True, exist_ok=True)
    with peer_registry.Registry(registry_path) as setup:
        setup.list()
    holder = spawn_python(HOLD_LOCK_FOR, str(registry_path) + ".lock", "30")

    async def main() -> None:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        async with AsyncRegistry(registry_path) as reg:
            with pytest.raises(TimeoutError) as excinfo:  # the builtin, as asyncio users catch it
                await reg.register({"id": "blocked", "url": URL})
            assert isinstance(excinfo.value, peer_registry.LockTimeoutError)
            assert "waiting for the lock" in str(excinfo.value)

    try:
        asyncio.run(main())
    finally:
        reap(holder)


def test_register_list_watch_unregister(registry_path: Path) -> None:
    async def main() -> None:
        async with AsyncRegistry(registry_path) as reg, AsyncRegistry(registry_path) as other:
            watch = await other.watch()
            async with watch:
                entry = await reg.register({"id": "a1", "url": URL, "capabilities": {"tools": ["t1"]}})
                assert entry["liveness"] == "lease"
                event = await asyncio.wait_for(watch.__anext__(), 5)
                assert [e["id"] for e in event["added"]] == ["a1"]
                assert [e["id"] for e in await other.list(tool="t1")] == ["a1"]
                assert (await other.resolve_tool("t1"))["id"] == "a1"
                assert (await other.list_with_generation()).generation == event["generation"]
                await reg.unregister("a1")
                event = await asyncio.wait_for(watch.__anext__(), 5)
                assert [e["id"] for e in event["removed"]] == ["a1"]
                with pytest.raises(peer_registry.NotFoundError):
                    await other.get("a1")
        assert reg.closed
        with pytest.raises(peer_registry.ClosedError):
            await reg.list()

    asyncio.run(main())


def test_async_registered_unregisters_when_the_task_is_cancelled(registry_path: Path) -> None:
    async def main() -> None:
        inside = asyncio.Event()

        async def server() -> None:
            async with registered(id="cancelled", url=URL, path=registry_path, tools=["x"]):
                inside.set()
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(server())
        await asyncio.wait_for(inside.wait(), 10)
        async with AsyncRegistry(registry_path) as reg:
            assert [e["id"] for e in await reg.list()] == ["cancelled"]
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await reg.list() == []
        assert "cancelled" not in registry_path.read_text()

    asyncio.run(main())


def test_errors_arrive_through_await(registry_path: Path) -> None:
    async def main() -> None:
        async with AsyncRegistry(registry_path) as reg:
            with pytest.raises(peer_registry.InvalidArgumentError):
                await reg.register({"id": "bad id!", "url": URL})
            with pytest.raises(peer_registry.InvalidArgumentError):
                await reg.list(status=7)
            with pytest.raises(peer_registry.NotFoundError):
                await reg.unregister("nobody")

    asyncio.run(main())
