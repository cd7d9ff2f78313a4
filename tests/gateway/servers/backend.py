"""A real MCP server (the official SDK's MCPServer) on streamable HTTP, registered in the
registry through the library's Python binding, for the gateway's tests.

    backend.py --registry PATH --id ID [--port N] [--tools a,b] [--prompts p] [--resource URI]
               [--template URI_TEMPLATE] [--tool-name NAME] [--no-register] [--bearer TOKEN]
               [--bind HOST] [--scope cluster] [--transport sse]

Binds 127.0.0.1 (port N, default any free one), prints the port, registers ID (lease: the
entry goes when this process dies) with url http://127.0.0.1:PORT/mcp, transport http, the
declared tools/prompts/resources, then serves. Tools: `whoami` (the id and pid), `echo`
(returns "<id>:<text>"), each name of --tools (returns "<id>:<name>"), `count` (a counter per
MCP session), `slow` (sleeps, reporting progress), `grow` (adds the tool "extra" and sends
tools/list_changed). --no-register: the test registers it (so the entry outlives a kill).
--bearer: every request needs Authorization: Bearer TOKEN (401 otherwise), as the entry's
headers say. --bind: listen on (and register) that loopback address instead, e.g. a cluster
test's "machine" address 127.0.0.2 (the SDK's Host check then allows that address). --scope
cluster: the entry opts in to publication by the cluster agent. --transport sse: the legacy
HTTP+SSE transport (MCP 2024-11-05, the SDK's sse_app: GET /sse, POST /messages/?session_id=...)
instead, registered with transport sse and url http://127.0.0.1:PORT/sse.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bindings" / "python" / "src"))

import peer_registry  # noqa: E402
import uvicorn  # noqa: E402
from mcp.server.mcpserver import Context, MCPServer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--registry", required=True)
parser.add_argument("--id", required=True)
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--tools", default="")
parser.add_argument("--prompts", default="")
parser.add_argument("--resource", action="append", default=[])
parser.add_argument("--template", default="")
parser.add_argument("--tool-name", action="append", default=[])
parser.add_argument("--no-register", action="store_true")
parser.add_argument("--bearer", default="")
parser.add_argument("--bind", default="127.0.0.1")
parser.add_argument("--scope", default="")
parser.add_argument("--transport", choices=["http", "sse"], default="http")
options = parser.parse_args()

server = MCPServer(options.id)
sessions: dict[str, int] = {}


@server.tool()
def whoami() -> str:
    """This server's id and pid."""
    return f"{options.id}:{os.getpid()}"


@server.tool()
def echo(text: str) -> str:
    """Returns its argument, prefixed with the server id."""
    return f"{options.id}:{text}"


@server.tool()
async def count(ctx: Context) -> int:
    """A counter kept per MCP session (the gateway gives each client its own session)."""
    # Streamable HTTP names the session in a header; legacy SSE in the POST's ?session_id=.
    request = ctx.request_context.request
    key = (ctx.headers or {}).get("mcp-session-id") or (request.query_params.get("session_id") if request is not None else None) or "none"
    sessions[key] = sessions.get(key, 0) + 1
    return sessions[key]


@server.tool()
async def slow(seconds: float, ctx: Context) -> str:
    """Sleeps, reporting progress five times."""
    for i in range(5):
        await ctx.report_progress(i + 1, 5, f"step {i + 1}")
        await asyncio.sleep(seconds / 5)
    return f"slept {seconds}"


@server.tool()
async def grow(ctx: Context) -> str:
    """Adds the tool "extra" and sends tools/list_changed."""
    def extra() -> str:
        """A tool added at run time."""
        return f"{options.id}:extra"
    server.add_tool(extra)
    await ctx.session.send_tool_list_changed()
    return "grown"


def make_tool(tool_name: str):
    def tool() -> str:
        return f"{options.id}:{tool_name}"
    tool.__doc__ = f"The tool {tool_name} of {options.id}."
    return tool


for name in [n for n in options.tools.split(",") if n] + options.tool_name:
    server.add_tool(make_tool(name), name=name)

def make_prompt(prompt_name: str):
    def prompt(topic: str = "x") -> str:
        return f"{options.id}:{prompt_name}:{topic}"
    return prompt


def make_reader(uri: str):
    def read() -> str:
        return f"{options.id}:{uri}"
    return read


for name in [n for n in options.prompts.split(",") if n]:
    server.prompt(name=name)(make_prompt(name))

for uri in options.resource:
    server.resource(uri, name=uri.rsplit("/", 1)[-1] or "resource")(make_reader(uri))

if options.template:
    @server.resource(options.template)
    def templated(item: str) -> str:
        return f"{options.id}:item:{item}"


@server.completion()
async def complete(ref, argument, context):
    """Completions name the server, what they complete (a prompt's name or a template's URI)
    and the partial value, so a test sees which backend answered."""
    from mcp.types import Completion
    what = getattr(ref, "name", None) or getattr(ref, "uri", "")
    return Completion(values=[f"{options.id}:{what}:{argument.value}"])


def main() -> None:
    make_app = server.sse_app if options.transport == "sse" else server.streamable_http_app
    if options.bind == "127.0.0.1":
        app = make_app()
    else:
        from mcp.server.transport_security import TransportSecuritySettings
        app = make_app(host=options.bind, transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=[f"{options.bind}:*"],
            allowed_origins=[f"http://{options.bind}:*"]))
    if options.bearer:
        inner = app

        async def guarded(scope, receive, send):
            if scope["type"] == "http":
                headers = dict(scope["headers"])
                if headers.get(b"authorization") != f"Bearer {options.bearer}".encode():
                    await send({"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]})
                    await send({"type": "http.response.body", "body": b""})
                    return
            await inner(scope, receive, send)
        app = guarded  # type: ignore[assignment]
    sock = socket.create_server((options.bind, options.port))
    port = sock.getsockname()[1]
    print(port, flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    if options.no_register:
        uvicorn.Server(config).run(sockets=[sock])
        return
    entry = dict(
        path=options.registry, id=options.id, name=f"Test backend {options.id}",
        url=f"http://{options.bind}:{port}/{'sse' if options.transport == 'sse' else 'mcp'}", transport=options.transport,
        tools=["whoami", "echo", "count", "slow", "grow"] + [n for n in options.tools.split(",") if n] + options.tool_name,
        prompts=[n for n in options.prompts.split(",") if n],
        resources=options.resource,
    )
    if options.scope:
        entry["scope"] = options.scope
    if options.bearer:
        entry["headers"] = {"Authorization": f"Bearer {options.bearer}"}
    with peer_registry.registered(**entry):
        uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
