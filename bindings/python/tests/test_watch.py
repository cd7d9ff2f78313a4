"""Watching: blocking iteration, timeouts, the fd, and asyncio's async iteration."""

from __future__ import annotations

import asyncio
import select
import time
from pathlib import Path
from typing import Callable, List, Optional

import pytest

import peer_registry
from peer_registry import Health, Registry, WatchEvent

from _support import reap, spawn_registrant

URL = "http://127.0.0.1:8080/mcp"


def event_ids(event: WatchEvent, kind: str) -> List[str]:
    return sorted(e["id"] for e in event[kind])  # type: ignore[literal-required]


def next_with(watch: peer_registry.Watch, kind: str, id: str, timeout: float = 10.0) -> WatchEvent:
    """The first event whose ``kind`` list holds ``id`` (earlier events may be unrelated)."""
    deadline = time.monotonic() + timeout
    while True:
        event = watch.next(timeout=max(0.0, deadline - time.monotonic()))
        if event is None:
            raise AssertionError(f"no event with {id!r} in {kind!r} within {timeout}s")
        if id in event_ids(event, kind):
            return event


def test_iterator_sees_another_process_register_and_leave(reg: Registry, registry_path: Path,
                                                          deadline: Callable[[float], None]) -> None:
    with reg.watch() as watch:
        start = reg.list_with_generation().generation
        child = spawn_registrant(registry_path, "from-child")
        try:
            deadline(15)
            for event in watch:  # blocking __next__
                if "from-child" in event_ids(event, "added"):
                    break
            deadline(0)
            assert event["generation"] > start
            added = event["added"][0]
            assert added["pid"] == child.pid and added["capabilities"]["tools"] == ["childTool"]
            assert child.stdin is not None
            child.stdin.close()  # the child closes its registry and exits
            assert child.wait(timeout=10) == 0
            gone = next_with(watch, "removed", "from-child")
            assert gone["removed"][0]["pid"] == child.pid  # the last entry seen
            assert gone["generation"] > event["generation"]
        finally:
            reap(child)


def test_changes_arrive_as_changed_events(reg: Registry) -> None:
    reg.register({"id": "c", "url": URL})
    with reg.watch() as watch:
        reg.set_health("c", Health.DEGRADED, "slow")
        event = next_with(watch, "changed", "c")
        assert event["changed"][0]["health"]["status"] == "DEGRADED"
        assert event["added"] == [] and event["removed"] == []


def test_opening_does_not_replay_and_timeout_returns_none(reg: Registry) -> None:
    reg.register({"id": "before", "url": URL})
    with reg.watch() as watch:
        started = time.monotonic()
        assert watch.next(timeout=0.3) is None
        assert time.monotonic() - started >= 0.29
        assert watch.next(timeout=0) is None


def test_bursts_are_coalesced_not_lost(reg: Registry) -> None:
    with reg.watch() as watch:
        for i in range(5):
            reg.register({"id": f"b{i}", "url": URL})
        reg.unregister("b0")
        seen: set = set()
        while seen != {"b1", "b2", "b3", "b4"}:
            event = watch.next(timeout=5)
            assert event is not None, f"missed registrations; saw {sorted(seen)}"
            seen |= set(event_ids(event, "added"))
            seen -= set(event_ids(event, "removed"))


def test_fd_is_readable_when_something_is_pending(reg: Registry) -> None:
    with reg.watch() as watch:
        fd = watch.fileno()
        assert fd >= 0
        # "Readable when an event may be pending": a wake-up may be spurious, but a
        # non-blocking next() must consume it.
        assert watch.next(timeout=0) is None
        assert select.select([fd], [], [], 0.2)[0] == []
        reg.register({"id": "fd", "url": URL})
        assert select.select([fd], [], [], 5)[0] == [fd]
        event = watch.next(timeout=0)
        assert event is not None and event_ids(event, "added") == ["fd"]
        # Drained: the fd must go quiet again, or an event loop polling it would spin.
        assert watch.next(timeout=0) is None
        assert select.select([fd], [], [], 0.2)[0] == []


def test_watch_outlives_its_registry(registry_path: Path, other: Registry) -> None:
    reg = Registry(registry_path)
    watch = reg.watch()
    reg.close()
    try:
        other.register({"id": "later", "url": URL})
        assert event_ids(next_with(watch, "added", "later"), "added") == ["later"]
    finally:
        watch.close()


def test_closed_watch(reg: Registry) -> None:
    watch = reg.watch()
    watch.close()
    watch.close()
    assert watch.closed
    assert list(watch) == []  # iteration just ends
    with pytest.raises(peer_registry.ClosedError):
        watch.next(timeout=0)
    with pytest.raises(peer_registry.ClosedError):
        watch.fileno()


def test_blocking_next_lets_signal_handlers_run(reg: Registry, deadline: Callable[[float], None]) -> None:
    # Ctrl-C must not wait for the next registry change.
    with reg.watch() as watch:
        deadline(0.3)
        started = time.monotonic()
        with pytest.raises(Exception, match="deadline"):
            next(watch)
        assert time.monotonic() - started < 2


# ---- asyncio ---------------------------------------------------------------------------------


def test_async_iteration_sees_another_process(reg: Registry, registry_path: Path) -> None:
    async def scenario() -> WatchEvent:
        watch = reg.watch()
        loop = asyncio.get_running_loop()
        # The child starts while the loop is already waiting on the watch's fd.
        child_task = loop.run_in_executor(None, spawn_registrant, registry_path, "async-child")
        ticks = 0

        async def ticker() -> None:  # proves the loop is not blocked while waiting
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        try:
            async def first_added() -> WatchEvent:
                async for event in watch:
                    if "async-child" in event_ids(event, "added"):
                        return event
                raise AssertionError("iteration ended")

            event = await asyncio.wait_for(first_added(), 15)
            # The loop ran while it waited for the child (a Python interpreter starting, tens of
            # milliseconds): a watch blocking the loop would leave no tick before the event.
            ticks_while_waiting = ticks
            child = await child_task
            assert event["added"][0]["pid"] == child.pid
            reap(child)  # SIGKILL: the kernel drops its lease
            async def first_removed() -> WatchEvent:
                async for ev in watch:
                    if "async-child" in event_ids(ev, "removed"):
                        return ev
                raise AssertionError("iteration ended")

            # No writer runs: the watch itself notices that the lease holder died.
            removed = await asyncio.wait_for(first_removed(), 15)
            assert ticks_while_waiting >= 1
            return removed
        finally:
            tick_task.cancel()
            watch.close()

    removed = asyncio.run(scenario())
    assert removed["removed"][0]["id"] == "async-child"


def test_closing_ends_a_pending_async_iteration(reg: Registry) -> None:
    async def scenario() -> Optional[str]:
        watch = reg.watch()

        async def consume() -> str:
            async for _ in watch:
                return "event"
            return "ended"

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        assert not task.done()
        watch.close()
        return await asyncio.wait_for(task, 5)

    assert asyncio.run(scenario()) == "ended"


def test_cancelling_an_async_wait_leaves_the_watch_usable(reg: Registry) -> None:
    async def scenario() -> WatchEvent:
        with reg.watch() as watch:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(watch.__anext__(), 0.1)
            reg.register({"id": "after-cancel", "url": URL})
            return await asyncio.wait_for(watch.__anext__(), 5)

    assert event_ids(asyncio.run(scenario()), "added") == ["after-cancel"]
