"""Serve an official-SDK ``MCPServer`` over HTTP and keep its registry entry right.

    from mcp.server.mcpserver import MCPServer
    from peer_registry.mcp import serve

    app = MCPServer("journey")

    @app.tool()
    def find_trips(origin: str, destination: str) -> list[str]: ...

    serve(app, id="journey")      # blocks until SIGINT/SIGTERM; the registry is clean after

What :func:`serve` does, in this order, so that nobody discovers a port that is not answering
and no entry outlives the server:

1. binds and listens on ``host:port`` first (port 0: the kernel picks a free one);
2. starts uvicorn on that very socket with the SDK's streamable HTTP app (``transport="sse"``:
   the legacy SSE app) and waits until its startup (the SDK's session manager) is done;
3. registers ``http://host:<the port it got><path>`` with the tools, resources (and resource
   template prefixes) and prompts read from the server itself, with ``lease`` liveness: if the
   process dies however it dies, the entry disappears by itself;
4. on SIGINT or SIGTERM, shuts uvicorn down gracefully, unregisters, and returns the signal
   number. uvicorn re-raises the signal it caught once it has stopped (which, for SIGTERM's
   default action, would kill the process before any cleanup runs); :func:`serve` installs its
   own handlers first, so the re-raise lands there and the cleanup always runs.

Needs the ``mcp`` package (``pip install 'peer-registry[mcp]'`` or ``pip install mcp``) and
its uvicorn; importing ``peer_registry`` alone does not import them.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Union

from ._lib import Library
from .errors import NotFoundError
from .registry import Registry
from .types import Capabilities, ServerEntry

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from ._lib import StrPath

__all__ = ["serve", "serve_async", "capabilities_of"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def capabilities_of(server: "MCPServer") -> Capabilities:
    """The tool and prompt names and the resource URIs an ``MCPServer`` declares right now.

    A resource template (``resource://journey/{id}``) contributes its literal prefix
    (``resource://journey/``), which is how the registry resolves resource URIs.
    """
    tools = [tool.name for tool in await server.list_tools()]
    resources: List[str] = [str(resource.uri) for resource in await server.list_resources()]
    for template in await server.list_resource_templates():
        prefix = str(template.uri_template).split("{", 1)[0]
        if "://" in prefix and prefix not in resources:
            resources.append(prefix)
    prompts = [prompt.name for prompt in await server.list_prompts()]
    return {"tools": tools, "resources": resources, "prompts": prompts}


def _url_host(host: str) -> str:
    """The host to put in the registered URL: a wildcard bind is reached on loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


async def serve_async(
    server: "MCPServer",
    *,
    id: str,
    host: str = "127.0.0.1",
    port: int = 0,
    path: Optional[str] = None,
    transport: str = "streamable-http",
    name: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    registry: Optional[Registry] = None,
    registry_path: Optional[StrPath] = None,
    lib: Union[Library, StrPath, None] = None,
    on_ready: Optional[Callable[[ServerEntry], None]] = None,
    log_level: str = "warning",
    **app_options: Any,
) -> Optional[int]:
    """Run ``server`` until SIGINT/SIGTERM (or cancellation), registered while it serves.

    ``id`` is the registry id; ``host``/``port`` where to listen (port 0: any free port);
    ``path`` the MCP endpoint (default ``/mcp``, or ``/sse`` for ``transport="sse"``);
    ``name`` the entry's name (default: the server's); ``metadata`` goes into the entry as is.
    The registry is ``registry`` if given, else one opened on ``registry_path`` (default:
    ``$PEER_REGISTRY_PATH``, else ``~/.peer-plan/servers.json``) and closed at the end.
    ``on_ready(entry)`` is called once the server answers and is registered. Other keyword
    arguments go to the SDK's ``streamable_http_app()`` / ``sse_app()`` (``json_response``,
    ``stateless_http``, ``transport_security``...).

    Returns the signal number that stopped the server (``None`` if it stopped otherwise), after
    the entry has been unregistered. Raises the registry's errors (e.g.
    :class:`~peer_registry.AlreadyExistsError` when another live server holds ``id``) after
    stopping uvicorn; ``OSError`` if the address cannot be bound.
    """
    import uvicorn  # the SDK's own dependency; imported here so peer_registry stays light

    if transport not in ("streamable-http", "sse"):
        raise ValueError(f"transport must be 'streamable-http' or 'sse', not {transport!r}")
    if path is None:
        path = "/mcp" if transport == "streamable-http" else "/sse"
    loop = asyncio.get_running_loop()

    # 1. The socket first: the port registered is the port bound.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    try:
        bound_port = sock.getsockname()[1]
        if transport == "streamable-http":
            app = server.streamable_http_app(streamable_http_path=path, host=host, **app_options)
        else:
            app = server.sse_app(sse_path=path, host=host, **app_options)
        uv = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))

        # Our handlers before uvicorn's: uvicorn saves them, restores them when it stops and
        # re-raises the signal it caught into them (not into SIGTERM's default action).
        caught: List[int] = []

        def on_signal(signum: int, frame: object) -> None:
            if not caught or caught[-1] != signum:
                caught.append(signum)
            uv.should_exit = True  # also stops a server whose startup is still running

        previous: Dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in _STOP_SIGNALS:
                previous[signum] = signal.signal(signum, on_signal)
        try:
            return await _run_registered(
                server, uv, sock, loop, caught,
                entry={
                    "id": id,
                    "name": name if name is not None else server.name,
                    "url": f"http://{_url_host(host)}:{bound_port}{path}",
                    "transport": "http" if transport == "streamable-http" else "sse",
                    **({"metadata": dict(metadata)} if metadata is not None else {}),
                },
                registry=registry, registry_path=registry_path, lib=lib, on_ready=on_ready,
            )
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    finally:
        sock.close()


async def _run_registered(
    server: "MCPServer",
    uv: Any,
    sock: socket.socket,
    loop: asyncio.AbstractEventLoop,
    caught: List[int],
    *,
    entry: Dict[str, Any],
    registry: Optional[Registry],
    registry_path: Optional[StrPath],
    lib: Union[Library, StrPath, None],
    on_ready: Optional[Callable[[ServerEntry], None]],
) -> Optional[int]:
    serving = asyncio.ensure_future(uv.serve(sockets=[sock]))
    reg: Optional[Registry] = registry
    owned = registry is None
    registered_id: Optional[str] = None
    try:
        # 2. Register only once uvicorn (and the SDK's lifespan) has started.
        while not uv.started and not serving.done():
            await asyncio.sleep(0.005)
        if serving.done():
            await serving  # startup failed or a signal came first: nothing was registered
            return caught[-1] if caught else None
        # 3. What the server itself declares, then the entry (in a thread: a write may wait
        # for the registry's lock, and the event loop must keep serving meanwhile).
        entry["capabilities"] = await capabilities_of(server)
        if reg is None:
            reg = await loop.run_in_executor(None, lambda: Registry(registry_path, lib=lib))
        opened = reg
        stored: ServerEntry = await loop.run_in_executor(None, opened.register, entry)
        registered_id = stored["id"]
        if on_ready is not None:
            on_ready(stored)
        # 4. Serve until a signal (uv.should_exit) or cancellation.
        await serving
        return caught[-1] if caught else None
    finally:
        if not serving.done():
            uv.should_exit = True
            try:
                await asyncio.shield(serving)
            except BaseException:  # pragma: no cover - shutting down after another error
                pass
        if reg is not None:
            closing = reg

            def cleanup() -> None:
                try:
                    if registered_id is not None:
                        try:
                            closing.unregister(registered_id)
                        except NotFoundError:
                            pass  # removed by someone else meanwhile
                finally:
                    if owned:
                        closing.close()

            await asyncio.shield(loop.run_in_executor(None, cleanup))


def serve(server: "MCPServer", *, id: str, **options: Any) -> Optional[int]:
    """Blocking :func:`serve_async` in a new event loop (``asyncio.run``); same arguments.

    Returns the signal number (SIGINT or SIGTERM) that stopped the server, once its entry is
    gone from the registry; the program then exits normally unless it decides otherwise.
    """
    return asyncio.run(serve_async(server, id=id, **options))
