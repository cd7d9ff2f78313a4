"""asyncio versions of :class:`~peer_registry.Registry` and :func:`~peer_registry.registered`.

    from peer_registry.aio import AsyncRegistry, registered

    async with AsyncRegistry() as reg:
        entry = await reg.register({"id": "journey", "url": url})
        servers = await reg.list(healthy=True)
        async for event in await reg.watch():
            ...

    async with registered(id="journey", url=url, tools=["findTrips"]) as entry:
        await serve()

Every call that can block (a write waits for the registry's file lock, up to 5 s by default; a
probe waits for the network) runs in the event loop's default executor, so the loop keeps
serving while it waits; the library releases the GIL for the call. The watch needs no thread:
its fd is polled by the loop. Imported on its own (``peer_registry.aio``) so that programs
without asyncio do not pay for importing it.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, Mapping, Optional, Sequence, TypeVar, Union

from ._lib import Library
from ._listing import Listing
from .errors import ClosedError, NotFoundError
from .registry import Registry, _entry_from
from .types import HealthLike, ServerEntry
from .watch import Watch

if TYPE_CHECKING:
    from ._lib import StrPath

__all__ = ["AsyncRegistry", "registered"]

T = TypeVar("T")


class AsyncRegistry:
    """A :class:`~peer_registry.Registry` whose methods are coroutines that never block the loop.

    Construction does no I/O: the handle is opened (in a worker thread) by ``async with``,
    :meth:`open`, or the first call. Methods, arguments, results and errors are those of
    :class:`~peer_registry.Registry`. Closing (``await close()``, the end of ``async with``)
    unregisters the lease entries registered through it. May be used from several tasks at once.
    """

    def __init__(self, path: Optional[StrPath] = None, *, lib: Union[Library, StrPath, None] = None) -> None:
        self._path = path
        self._lib = lib
        self._sync: Optional[Registry] = None
        self._closed = False
        self._open_lock = threading.Lock()

    # ---- lifetime -------------------------------------------------------------------------

    def _open_sync(self) -> Registry:
        with self._open_lock:
            if self._closed:
                raise ClosedError(-10, "the registry handle is closed")
            if self._sync is None:
                self._sync = Registry(self._path, lib=self._lib)
            return self._sync

    async def _run(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            return method(self._open_sync(), *args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(None, call)

    async def open(self) -> "AsyncRegistry":
        """Open the handle now (idempotent); returns ``self``."""
        await asyncio.get_running_loop().run_in_executor(None, self._open_sync)
        return self

    async def close(self) -> None:
        """Unregister this handle's lease entries and release it. Idempotent."""
        with self._open_lock:
            self._closed = True
            sync, self._sync = self._sync, None
        if sync is not None:
            await asyncio.get_running_loop().run_in_executor(None, sync.close)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def registry(self) -> Optional[Registry]:
        """The underlying blocking :class:`~peer_registry.Registry` (``None`` until opened)."""
        return self._sync

    async def __aenter__(self) -> "AsyncRegistry":
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._sync is not None else "not opened yet")
        where = self._path if self._path is not None else "default path"
        return f"<peer_registry.aio.AsyncRegistry {where!r} {state}>"

    # ---- the Registry's methods, as coroutines -----------------------------------------------

    async def register(self, entry: Mapping[str, Any]) -> ServerEntry:
        return await self._run(Registry.register, entry)

    async def unregister(self, id: str) -> None:
        await self._run(Registry.unregister, id)

    async def set_health(self, id: str, status: HealthLike, message: Optional[str] = None) -> None:
        await self._run(Registry.set_health, id, status, message)

    async def heartbeat(self, id: str) -> None:
        await self._run(Registry.heartbeat, id)

    async def probe(self, id: str, timeout: float = 0) -> ServerEntry:
        return await self._run(Registry.probe, id, timeout)

    async def prune(self) -> int:
        return await self._run(Registry.prune)

    async def get(self, id: str) -> ServerEntry:
        return await self._run(Registry.get, id)

    async def list(self, **filters: Any) -> builtins.list[ServerEntry]:
        return await self._run(Registry.list, **filters)

    async def list_with_generation(self, **filters: Any) -> Listing:
        return await self._run(Registry.list_with_generation, **filters)

    async def resolve_tool(self, name: str) -> ServerEntry:
        return await self._run(Registry.resolve_tool, name)

    async def resolve_resource(self, uri: str) -> ServerEntry:
        return await self._run(Registry.resolve_resource, uri)

    async def resolve_prompt(self, name: str) -> ServerEntry:
        return await self._run(Registry.resolve_prompt, name)

    async def watch(self) -> Watch:
        """Open a :class:`~peer_registry.Watch`; iterate it with ``async for``."""
        return await self._run(Registry.watch)


# Each coroutine carries the docstring of its blocking version (what it does, what it raises).
for _name in ("register", "unregister", "set_health", "heartbeat", "probe", "prune", "get",
              "list", "list_with_generation", "resolve_tool", "resolve_resource", "resolve_prompt"):
    getattr(AsyncRegistry, _name).__doc__ = getattr(Registry, _name).__doc__
del _name


@asynccontextmanager
async def registered(
    entry: Optional[Mapping[str, Any]] = None,
    /,
    *,
    registry: Optional[AsyncRegistry] = None,
    path: Optional[StrPath] = None,
    lib: Union[Library, StrPath, None] = None,
    tools: Optional[Sequence[str]] = None,
    resources: Optional[Sequence[str]] = None,
    prompts: Optional[Sequence[str]] = None,
    **fields: Any,
) -> AsyncIterator[ServerEntry]:
    """``async with`` version of :func:`peer_registry.registered`: registers for the block's
    duration, unregisters at its end (also on an exception or a cancellation)."""
    data: Dict[str, Any] = _entry_from(entry, fields, tools, resources, prompts)
    owned = registry is None
    reg = AsyncRegistry(path, lib=lib) if registry is None else registry
    try:
        stored = await reg.register(data)
        try:
            yield stored
        finally:
            # Shielded: a cancelled task still leaves the registry clean.
            try:
                await asyncio.shield(reg.unregister(stored["id"]))
            except NotFoundError:
                pass
    finally:
        if owned:
            await asyncio.shield(reg.close())

