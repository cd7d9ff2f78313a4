#!/usr/bin/env python3
"""An MCP server built with the official MCP Python SDK that announces itself in the registry.

    pip install 'peer_registry-0.2.0-py3-none-linux_x86_64.whl[mcp]'   # or: pip install mcp
    python3 examples/python/server.py [ID]

An ``MCPServer`` with two tools, a resource and a prompt, served over streamable HTTP by
``peer_registry.mcp.serve``: it listens on 127.0.0.1 on a port the kernel picks, registers
``http://127.0.0.1:PORT/mcp`` (with the tool, resource and prompt names read from the server)
once it answers, and unregisters on SIGINT or SIGTERM (exit 0). If it dies any other way, even
by SIGKILL, its lease entry disappears by itself. The registry is $PEER_REGISTRY_PATH, else
~/.peer-plan/servers.json.
"""

from __future__ import annotations

import sys
import time

from mcp.server.mcpserver import MCPServer

from peer_registry.mcp import serve

app = MCPServer("python-example", instructions="A peer-registry example server.")


@app.tool()
def echo(text: str) -> str:
    """Returns its argument."""
    return text


@app.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@app.resource("resource://python-example/clock")
def clock() -> str:
    """The server's clock, as seconds since the epoch."""
    return f"{time.time():.3f}"


@app.prompt()
def greet(name: str) -> str:
    """A greeting for NAME."""
    return f"Say hello to {name}."


def main() -> int:
    server_id = sys.argv[1] if len(sys.argv) > 1 else "python-example"
    serve(app, id=server_id,
          on_ready=lambda entry: print(f"{entry['id']} listening on {entry['url']}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
