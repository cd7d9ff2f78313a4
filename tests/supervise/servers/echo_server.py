"""A real MCP server (the official SDK's MCPServer) on stdio, for the supervisor's tests.

Tools: echo, add, whoami (this process's pid), env (a variable of this process), count (a counter held by this process, so two
sessions sharing a process see each other's counts), slow (sleeps, reporting progress), grow (adds the tool "extra", sends tools/list_changed).
A resource echo://info and a resource template echo://items/{item}; a prompt greet.
Options: --crash-after N  exit(3) on the Nth tool call;  --name NAME  the server's name;
         --ignore-sigterm  (ignores SIGTERM and keeps running after its input ends: it must be SIGKILLed);  --flood-stderr  (writes stderr
         as fast as it can from a thread, forever).
"""

import argparse
import asyncio
import os
import signal
import sys
import threading
import time

from mcp.server.mcpserver import Context, MCPServer

parser = argparse.ArgumentParser()
parser.add_argument("--crash-after", type=int, default=0)
parser.add_argument("--name", default="echo")
parser.add_argument("--ignore-sigterm", action="store_true")
parser.add_argument("--flood-stderr", action="store_true")
options = parser.parse_args()

if options.ignore_sigterm:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

if options.flood_stderr:
    def flood() -> None:
        line = ("flood " * 30 + "\n").encode()
        n = 0
        while True:
            n += 1
            try:
                os.write(2, b"%d " % n + line)
            except OSError:
                return
    threading.Thread(target=flood, daemon=True).start()

server = MCPServer(options.name)
calls = 0
counter = 0


def tool_called() -> None:
    global calls
    calls += 1
    if options.crash_after and calls >= options.crash_after:
        print(f"crashing on purpose after {calls} calls", file=sys.stderr, flush=True)
        os._exit(3)


@server.tool()
def echo(text: str) -> str:
    """Returns its argument."""
    tool_called()
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    tool_called()
    return a + b


@server.tool()
def whoami() -> int:
    """This server process's pid."""
    tool_called()
    return os.getpid()


@server.tool()
def env(name: str) -> str:
    """The value of an environment variable in this process ("<unset>" when absent)."""
    tool_called()
    return os.environ.get(name, "<unset>")


@server.tool()
def count() -> int:
    """Increments and returns a counter kept by this process."""
    global counter
    tool_called()
    counter += 1
    return counter


@server.tool()
async def slow(seconds: float, ctx: Context) -> str:
    """Sleeps, reporting progress ten times."""
    tool_called()
    for i in range(10):
        await ctx.report_progress(i + 1, 10, f"step {i + 1}")
        await asyncio.sleep(seconds / 10)
    return f"slept {seconds}"


@server.tool()
async def grow(ctx: Context) -> str:
    """Adds the tool "extra" and tells the client its tool list changed."""
    tool_called()

    def extra() -> str:
        """A tool added at run time."""
        return "extra"
    server.add_tool(extra)
    await ctx.session.send_tool_list_changed()
    return "grown"


@server.resource("echo://info")
def info() -> str:
    """About this server."""
    return f"echo server pid {os.getpid()}"


@server.resource("echo://items/{item}")
def item(item: str) -> str:
    return f"item {item}"


@server.prompt()
def greet(name: str) -> str:
    """A greeting."""
    return f"Hello, {name}!"


if __name__ == "__main__":
    print(f"echo server {options.name} starting, pid {os.getpid()}", file=sys.stderr, flush=True)
    server.run()
    if options.ignore_sigterm:
        # Stubborn to the end: not even the end of its input makes it exit.
        while True:
            time.sleep(1)
