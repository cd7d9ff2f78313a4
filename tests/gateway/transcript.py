"""Prints an agent's view of the gateway (the official MCP Python client over stdio): tools/list
before and after a server registers itself, the three call forms, the server SIGKILLed.
Not a test; docs/GATEWAY.md's example session comes from it.

    PEER_REGISTRY_BIN=... PEER_REGISTRY_LIB=... python3 tests/gateway/transcript.py
"""

import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import World, stdio_gateway, tool_names  # noqa: E402


async def show_call(s, name):
    try:
        r = await s.call_tool(name, {})
        print(f"→ tools/call {name} {{}}  ← {r.content[0].text!r}" + (" (isError)" if r.is_error else ""))
    except BaseException as e:  # noqa: BLE001
        from conftest import mcp_error_in
        err = mcp_error_in(e)
        print(f"→ tools/call {name} {{}}  ← error {getattr(err, 'code', '?')}: {err}")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = World(os.environ["PEER_REGISTRY_BIN"], Path(tmp))
        try:
            async with stdio_gateway(world) as (s, notes):
                print("$ peer-registry gateway   (spawned by the client over stdio)")
                print("→ tools/list  ←", ", ".join(await tool_names(s)))
                print("   (a server starts and registers itself as \"docs\" through the Python binding)")
                n = len(notes.seen)
                backend = world.start_backend("docs", "--tools", "search", wait=False)
                await notes.wait("notifications/tools/list_changed", 0, timeout=30)
                await asyncio.sleep(0.2)
                for m in notes.seen[n:]:
                    print("←", m)
                print("→ tools/list  ←", ", ".join(await tool_names(s)))
                for name in ("docs__search", "docs.search", "search"):
                    await show_call(s, name)
                print("   (the server is SIGKILLed)")
                n = len(notes.seen)
                before = notes.count("notifications/tools/list_changed")
                backend.kill()
                await show_call(s, "docs__search")
                await notes.wait("notifications/tools/list_changed", before, timeout=10)
                await asyncio.sleep(0.2)
                for m in notes.seen[n:]:
                    print("←", m)
                print("→ tools/list  ←", ", ".join(await tool_names(s)))
        finally:
            world.cleanup()


asyncio.run(main())
