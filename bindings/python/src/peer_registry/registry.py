"""The Registry handle and the ``registered()`` context manager."""

from __future__ import annotations

import _thread
import builtins
import math
import os
import time
from ctypes import byref, c_int, c_void_p

from . import _json as json
from ._lib import Library, resolve_library
from ._listing import Listing
from .errors import ClosedError, InvalidArgumentError, NotFoundError, RegistryError
from .watch import Watch

# What is imported here is what `import peer_registry` costs: no typing, enum, json, re,
# threading or contextlib at run time (bindings/python/bench_import.py measures it).
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping, Optional, Sequence, Union

    from ._lib import StrPath
    from .types import HealthLike, ServerEntry

__all__ = ["Registry", "registered"]

# Health names by value, as in include/peer_registry.h (peer_registry.Health mirrors them).
_HEALTH_NAMES = ("UNKNOWN", "HEALTHY", "DEGRADED", "DOWN")

_TOOL, _RESOURCE, _PROMPT = 1, 2, 3
_SCOPE_CLUSTER = 1  # PEERREG_SCOPE_CLUSTER (0.2.0)
_INT32_MAX = 2**31 - 1


def _text(value: str, what: str) -> bytes:
    """A str argument as the NUL-terminated UTF-8 the C ABI takes."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if "\0" in value:
        # ctypes would silently cut the string at the NUL and act on a different name.
        raise InvalidArgumentError(-1, f"{what} contains a NUL character: {value!r}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgumentError(-1, f"{what} is not valid UTF-8: {e}") from None


def _json(value: Any, what: str) -> bytes:
    return _text(json.dumps(value), what)


def _health_code(status: HealthLike) -> int:
    if isinstance(status, str):
        try:
            return _HEALTH_NAMES.index(status.upper())
        except ValueError:
            names = ", ".join(_HEALTH_NAMES)
            raise InvalidArgumentError(
                -1, f"unknown health status {status!r}; expected one of {names}"
            ) from None
    # Out-of-range ints go to the library, which rejects them with PEERREG_EINVAL.
    return int(status)


def _timeout_ms(timeout: float) -> int:
    """Seconds as the C ABI's milliseconds: rounded up, so a short timeout never becomes 0
    (which the library reads as "its default"); 0 or less passes 0 (the default, 2 s)."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if math.isnan(timeout):
        raise InvalidArgumentError(-1, "timeout is NaN")
    if timeout <= 0:
        return 0
    if timeout * 1000 >= _INT32_MAX:
        return _INT32_MAX
    return max(1, math.ceil(timeout * 1000))


def _health_name(status: HealthLike) -> str:
    if isinstance(status, str):
        return status.upper()  # an unknown name is rejected by the library (PEERREG_EINVAL)
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"status must be a Health, its int value or its name, not {type(status).__name__}")
    if 0 <= status < len(_HEALTH_NAMES):
        return _HEALTH_NAMES[status]
    values = ", ".join(f"{value} ({name})" for value, name in enumerate(_HEALTH_NAMES))
    raise InvalidArgumentError(-1, f"unknown health status {status!r}; expected one of {values}")


class Registry:
    """A handle on one registry file (``peerreg_registry``).

    ``path`` is the registry's JSON file (``None``: ``$PEER_REGISTRY_PATH``, else
    ``~/.peer-plan/servers.json``); ``lib`` a :class:`Library`, a path to the shared library,
    or ``None`` for the default lookup. A Registry may be shared between threads; library calls
    run without the GIL. Closing it (``close()``, the end of a ``with`` block, or garbage
    collection) unregisters every entry it registered with ``lease`` liveness.

    Every method raises a :class:`RegistryError` subclass on failure, and
    :class:`ClosedError` once the registry is closed.
    """

    def __init__(self, path: Optional[StrPath] = None, *, lib: Union[Library, StrPath, None] = None) -> None:
        self._handle: Optional[int] = None
        self.lib: Library = resolve_library(lib)
        self.path: Optional[str] = None if path is None else os.fspath(path)
        # Calls in flight, so that close() never frees a handle another thread is passing to
        # the library (its address could be reused by a new handle).
        self._lock = _thread.allocate_lock()
        self._busy = 0
        # Ids this handle registered with a lease: closing the handle unregisters them, so a
        # Registry garbage-collected while they are listed is a bug worth a ResourceWarning.
        self._leased: "builtins.set[str]" = builtins.set()
        handle = c_void_p()
        path_arg = None if self.path is None else os.fsencode(self.path)
        if path_arg is not None and b"\0" in path_arg:
            raise InvalidArgumentError(-1, f"path contains a NUL character: {self.path!r}")
        self.lib.call(self.lib.peerreg_open, byref(handle), path_arg)
        if not handle.value:
            raise RegistryError(0, "peerreg_open reported success but returned no handle")
        self._handle = handle.value

    # ---- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Unregister this handle's lease entries and release it. Idempotent.

        Waits for calls other threads have in flight on this handle to return.
        """
        with self._lock:
            handle = self._handle
            if handle is None:
                return
            self._handle = None
            self._leased.clear()
        # Calls in flight are rare at close and short (a write waits at most the lock
        # timeout): poll rather than keep a threading.Condition on every handle.
        while True:
            with self._lock:
                if not self._busy:
                    break
            time.sleep(0.001)
        self.lib.peerreg_close(handle)

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            leased = getattr(self, "_leased", None)
            if leased:
                import warnings

                warnings.warn(
                    f"unclosed {self!r} with live registrations {sorted(leased)}: garbage "
                    "collection unregisters them now; close() it (or use `with`) where they "
                    "should end",
                    ResourceWarning,
                    source=self,
                )
            self._handle = None
            try:
                self.lib.peerreg_close(handle)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else "open"
        where = self.path if self.path is not None else "default path"
        return f"<peer_registry.Registry {where!r} {state}>"

    def _acquire(self) -> int:
        with self._lock:
            handle = self._handle
            if handle is None:
                raise ClosedError(-10, "the registry handle is closed")
            self._busy += 1
            return handle

    def _release(self) -> None:
        with self._lock:
            self._busy -= 1

    def _string_call(self, fn: Any, *args: object) -> str:
        handle = self._acquire()
        try:
            return self.lib.call_string(fn, handle, *args)
        finally:
            self._release()

    def _call(self, fn: Any, *args: object) -> None:
        handle = self._acquire()
        try:
            self.lib.call(fn, handle, *args)
        finally:
            self._release()

    # ---- writing --------------------------------------------------------------------------

    def register(self, entry: Mapping[str, Any]) -> ServerEntry:
        """Register (or, if this handle registered the same id, replace) one server.

        ``entry`` is an entry as in docs/FORMAT.md; ``id`` and ``url`` are required, the rest
        defaults (liveness ``lease``, pid = this process, transport from the URL scheme...).
        Returns the entry as stored. Durable when it returns. Raises
        :class:`AlreadyExistsError` when another live registrant holds the id.
        """
        stored = self._string_call(self.lib.peerreg_register, _json(dict(entry), "entry"))
        result: ServerEntry = json.loads(stored)
        with self._lock:
            if result.get("liveness", "lease") == "lease":
                self._leased.add(result["id"])
            else:
                self._leased.discard(result["id"])
        return result

    def unregister(self, id: str) -> None:
        """Remove entry ``id`` (any liveness). :class:`NotFoundError` when there is none."""
        try:
            self._call(self.lib.peerreg_unregister, _text(id, "id"))
        except NotFoundError:
            with self._lock:
                self._leased.discard(id)
            raise
        with self._lock:
            self._leased.discard(id)

    def set_health(self, id: str, status: HealthLike, message: Optional[str] = None) -> None:
        """Record the health of ``id``: a :class:`Health`, its value, or its name (``"DOWN"``)."""
        msg = None if message is None else _text(message, "message")
        self._call(self.lib.peerreg_set_health, _text(id, "id"), _health_code(status), msg)

    def heartbeat(self, id: str) -> None:
        """Set ``lastSeen`` of ``id`` to now (keeps ``ttl`` entries alive)."""
        self._call(self.lib.peerreg_heartbeat, _text(id, "id"))

    def probe(self, id: str, timeout: float = 0) -> ServerEntry:
        """Check ``id`` now by its transport and record the outcome; return the entry as stored.

        The MCP handshake for ``http`` (``initialize``, ``notifications/initialized`` and
        ``ping`` in one ``Mcp-Session-Id`` session, deleted after) and for ``sse`` (the legacy
        flow), a TCP connect for ``ws``; only correct JSON-RPC results count, so an HTTP 400 or
        500, garbage or silence never makes a server HEALTHY. Success makes the entry HEALTHY; failures count up in ``health.consecutiveFailures``
        and make it DEGRADED after 1, DOWN after 3 (DOWN servers no longer resolve);
        ``health.message`` says what was seen. A failed probe is recorded, not raised.
        Blocks up to ``timeout`` seconds (by default, 0 or less: the library's, 2 s) plus one
        write; other threads keep running meanwhile. :class:`NotFoundError` when there is no
        live entry ``id``.
        """
        stored = self._string_call(self.lib.peerreg_probe, _text(id, "id"), _timeout_ms(timeout))
        result: ServerEntry = json.loads(stored)
        return result

    def prune(self) -> int:
        """Remove dead entries and orphaned lease files now; return how many entries went."""
        removed = c_int(0)
        self._call(self.lib.peerreg_prune, byref(removed))
        return removed.value

    # ---- reading --------------------------------------------------------------------------

    def get(self, id: str) -> ServerEntry:
        """The live entry ``id``. :class:`NotFoundError` when missing or dead."""
        result: ServerEntry = json.loads(self._string_call(self.lib.peerreg_get, _text(id, "id")))
        return result

    def list_with_generation(
        self,
        *,
        healthy: Optional[bool] = None,
        status: Optional[HealthLike] = None,
        transport: Optional[str] = None,
        tool: Optional[str] = None,
        resource: Optional[str] = None,
        prompt: Optional[str] = None,
        scope: Optional[str] = None,
    ) -> Listing:
        """The live entries matching every given filter, with the file generation read.

        ``healthy``: health is (or is not) HEALTHY; ``status``: health equals this;
        ``transport``: equals this; ``tool`` / ``prompt``: declared; ``resource``: a declared
        resource is a prefix of (or equal to) this URI; ``scope="cluster"``: also the other
        machines' entries mirrored by ``peer-registry agent`` (each with ``node``; docs/CLUSTER.md).
        """
        filters: Dict[str, Any] = {}
        if healthy is not None:
            filters["healthy"] = bool(healthy)
        if status is not None:
            filters["status"] = _health_name(status)
        for key, value in (("transport", transport), ("tool", tool), ("resource", resource), ("prompt", prompt), ("scope", scope)):
            if value is not None:
                filters[key] = value
        filter_arg = _json(filters, "filter") if filters else None
        data = json.loads(self._string_call(self.lib.peerreg_list, filter_arg))
        return Listing(data["generation"], data["servers"])

    def list(
        self,
        *,
        healthy: Optional[bool] = None,
        status: Optional[HealthLike] = None,
        transport: Optional[str] = None,
        tool: Optional[str] = None,
        resource: Optional[str] = None,
        prompt: Optional[str] = None,
        scope: Optional[str] = None,
    ) -> builtins.list[ServerEntry]:
        """The live entries matching every given filter (see :meth:`list_with_generation`)."""
        return self.list_with_generation(
            healthy=healthy, status=status, transport=transport, tool=tool, resource=resource, prompt=prompt,
            scope=scope,
        ).servers

    def _resolve(self, kind: int, name: str, scope: str) -> ServerEntry:
        if scope not in ("local", "cluster"):
            raise InvalidArgumentError(-1, f"scope {scope!r}: use 'local' or 'cluster'")
        if scope == "local":
            text = self._string_call(self.lib.peerreg_resolve, kind, _text(name, "name"))
        else:
            text = self._string_call(self.lib.peerreg_resolve_scoped, kind, _text(name, "name"), _SCOPE_CLUSTER)
        result: ServerEntry = json.loads(text)
        return result

    def resolve_tool(self, name: str, *, scope: str = "local") -> ServerEntry:
        """The one live server for tool ``name`` (``"server.tool"`` is qualified).

        :class:`AmbiguousError` when equally healthy servers declare it,
        :class:`NotFoundError` when none (DOWN servers never resolve). ``scope="cluster"``:
        the other machines' servers are candidates too; a local one wins a tie.
        """
        return self._resolve(_TOOL, name, scope)

    def resolve_resource(self, uri: str, *, scope: str = "local") -> ServerEntry:
        """The live server declaring ``uri`` exactly, else the longest prefix of it."""
        return self._resolve(_RESOURCE, uri, scope)

    def resolve_prompt(self, name: str, *, scope: str = "local") -> ServerEntry:
        """The one live server for prompt ``name`` (same rules as :meth:`resolve_tool`)."""
        return self._resolve(_PROMPT, name, scope)

    # ---- watching -------------------------------------------------------------------------

    def watch(self, *, scope: str = "local") -> Watch:
        """Open a :class:`Watch` on this registry; its first event is the first change.
        ``scope="cluster"``: the other machines' entries are watched too."""
        if scope not in ("local", "cluster"):
            raise InvalidArgumentError(-1, f"scope {scope!r}: use 'local' or 'cluster'")
        handle = self._acquire()
        try:
            out = c_void_p()
            if scope == "local":
                self.lib.call(self.lib.peerreg_watch_open, byref(out), handle)
            else:
                self.lib.call(self.lib.peerreg_watch_open_filtered, byref(out), handle, b'{"scope":"cluster"}')
        finally:
            self._release()
        if not out.value:
            raise RegistryError(0, "peerreg_watch_open reported success but returned no watch")
        return Watch(self.lib, out.value)


def _entry_from(
    entry: Optional[Mapping[str, Any]],
    fields: Mapping[str, Any],
    tools: Optional[Sequence[str]],
    resources: Optional[Sequence[str]],
    prompts: Optional[Sequence[str]],
) -> Dict[str, Any]:
    """``entry`` updated with ``fields``, with ``tools``/``resources``/``prompts`` in capabilities."""
    data: Dict[str, Any] = dict(entry or {})
    data.update(fields)
    if tools is not None or resources is not None or prompts is not None:
        capabilities = dict(data.get("capabilities") or {})
        for key, values in (("tools", tools), ("resources", resources), ("prompts", prompts)):
            if values is not None:
                capabilities[key] = builtins.list(values)
        data["capabilities"] = capabilities
    return data


class registered:
    """Register a server for the duration of a ``with`` block; ``as`` gives the stored entry.

    The entry is ``entry`` updated with ``fields`` (JSON names: ``id``, ``url``, ``name``,
    ``transport``, ``liveness``, ``ttlSeconds``, ``metadata``...); ``tools``, ``resources`` and
    ``prompts`` fill ``capabilities``. Uses ``registry`` if given, else opens one on ``path``
    (closed at the end). Registers when the block starts; the entry is unregistered when the
    block ends, also on an exception. (A class rather than ``@contextmanager``, so that
    importing peer_registry does not import contextlib.)
    """

    def __init__(
        self,
        entry: Optional[Mapping[str, Any]] = None,
        /,
        *,
        registry: Optional[Registry] = None,
        path: Optional[StrPath] = None,
        lib: Union[Library, StrPath, None] = None,
        tools: Optional[Sequence[str]] = None,
        resources: Optional[Sequence[str]] = None,
        prompts: Optional[Sequence[str]] = None,
        **fields: Any,
    ) -> None:
        self._data = _entry_from(entry, fields, tools, resources, prompts)
        self._registry = registry
        self._path = path
        self._lib = lib
        self._owned: Optional[Registry] = None
        self._stored: Optional[ServerEntry] = None

    def __enter__(self) -> ServerEntry:
        reg = self._registry
        if reg is None:
            reg = self._owned = Registry(self._path, lib=self._lib)
        try:
            self._stored = reg.register(self._data)
        except BaseException:
            if self._owned is not None:
                self._owned.close()
                self._owned = None
            raise
        return self._stored

    def __exit__(self, *exc_info: object) -> None:
        reg = self._registry if self._registry is not None else self._owned
        stored, self._stored = self._stored, None
        try:
            if reg is not None and stored is not None:
                try:
                    reg.unregister(stored["id"])
                except NotFoundError:
                    pass  # already unregistered inside the block
        finally:
            if self._owned is not None:
                self._owned.close()
                self._owned = None
