"""Watching a registry for changes: a blocking iterator and an asyncio async iterator."""

from __future__ import annotations

import math
import time
from ctypes import byref, c_void_p

from . import _json as json
from ._lib import PEERREG_ETIMEOUT
from .errors import ClosedError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    import asyncio
    from typing import Optional

    from ._lib import Library
    from .types import WatchEvent

__all__ = ["Watch"]

# A blocking wait is made of slices this long, so that Ctrl-C (KeyboardInterrupt) and other
# Python signal handlers run within this time instead of after the next registry change.
_SLICE_MS = 200


class Watch:
    """A watch on a registry (``peerreg_watch``), from :meth:`Registry.watch`.

    Events are dicts ``{"generation", "added", "removed", "changed"}`` whose lists hold whole
    entries (``removed``: the last version seen). Bursts of writes are coalesced, never missed;
    the state when the watch was opened is the baseline, not replayed.

    Use it from one thread (or one event loop) at a time::

        with reg.watch() as w:
            for event in w:           # blocks until each change
                ...
            event = w.next(timeout=1.0)   # None if nothing changed within a second

        async for event in reg.watch():   # the fd is polled by the running asyncio loop
            ...

        async with await async_reg.watch() as w:   # peer_registry.aio.AsyncRegistry
            event = await asyncio.wait_for(w.__anext__(), 1.0)

    Iteration ends when the watch is closed. The watch keeps working after its registry
    handle is closed.
    """

    def __init__(self, lib: "Library", handle: int) -> None:
        self._lib = lib
        self._handle: Optional[int] = handle
        self._waiter: Optional["asyncio.Future[None]"] = None
        self._waiter_loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiter_fd = -1

    # ---- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the watch and its fd. Idempotent; ends a pending ``async for``."""
        handle = self._handle
        if handle is None:
            return
        self._handle = None
        self._stop_waiting()
        self._lib.peerreg_watch_close(handle)

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> "Watch":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None
            try:
                self._lib.peerreg_watch_close(handle)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def fileno(self) -> int:
        """The fd that is readable when an event may be pending (owned by the watch)."""
        if self._handle is None:
            raise ClosedError(-10, "the watch is closed")
        fd: int = self._lib.peerreg_watch_fd(self._handle)
        return fd

    # ---- events ---------------------------------------------------------------------------

    def _poll(self, timeout_ms: int) -> Optional[WatchEvent]:
        if self._handle is None:
            raise ClosedError(-10, "the watch is closed")
        out = c_void_p()
        err = c_void_p()
        rc = self._lib.peerreg_watch_next(self._handle, timeout_ms, byref(out), byref(err))
        if rc == PEERREG_ETIMEOUT:
            self._lib.peerreg_error_free(err)
            return None
        if rc:
            self._lib.peerreg_free(out)
            raise self._lib.error(rc, err)
        event: WatchEvent = json.loads(self._lib.take_string(out))
        return event

    def next(self, timeout: Optional[float] = None) -> Optional[WatchEvent]:
        """The next change, waiting up to ``timeout`` seconds (``None``: forever).

        Returns ``None`` when nothing changed in time. Raises :class:`ClosedError` on a
        closed watch.
        """
        if timeout is None:
            while True:
                event = self._poll(_SLICE_MS)
                if event is not None:
                    return event
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining_ms = max(0, math.ceil((deadline - time.monotonic()) * 1000))
            event = self._poll(min(_SLICE_MS, remaining_ms))
            if event is not None or remaining_ms <= _SLICE_MS:
                return event

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> WatchEvent:
        if self._handle is None:
            raise StopIteration
        event = self.next()
        assert event is not None
        return event

    def __aiter__(self) -> "Watch":
        return self

    async def __anext__(self) -> WatchEvent:
        import asyncio  # here, not at the top: it would triple the package's import time

        loop = asyncio.get_running_loop()
        while True:
            if self._handle is None:
                raise StopAsyncIteration
            # Timeout 0: PEERREG_ETIMEOUT only means nothing is pending yet.
            event = self._poll(0)
            if event is not None:
                return event
            await self._readable(loop)

    async def _readable(self, loop: asyncio.AbstractEventLoop) -> None:
        fd = self.fileno()
        waiter: "asyncio.Future[None]" = loop.create_future()

        def ready() -> None:
            if not waiter.done():
                waiter.set_result(None)

        loop.add_reader(fd, ready)
        self._waiter, self._waiter_loop, self._waiter_fd = waiter, loop, fd
        try:
            await waiter
        finally:
            self._stop_waiting()

    def _stop_waiting(self) -> None:
        # Unregister the fd from the loop before the library closes it (close() may run in
        # another task on the same loop while __anext__ is suspended).
        loop, waiter, fd = self._waiter_loop, self._waiter, self._waiter_fd
        self._waiter, self._waiter_loop, self._waiter_fd = None, None, -1
        if loop is not None:
            loop.remove_reader(fd)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<peer_registry.Watch {'closed' if self._handle is None else 'open'}>"
