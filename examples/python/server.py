#!/usr/bin/env python3
"""A tiny MCP-style HTTP server that announces itself in the peer registry.

    python3 examples/python/server.py [ID]

Listens on 127.0.0.1 on a port the kernel picks, registers http://127.0.0.1:PORT/mcp only once
it is listening (so nobody discovers a port that refuses connections), answers JSON-RPC
``ping`` and ``tools/list`` on POST /mcp, and unregisters on SIGINT or SIGTERM (exit 0).
If it dies any other way, even by SIGKILL, its lease entry disappears by itself.

The registry is $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json. Standard library only,
plus the peer_registry binding (pip install bindings/python, or run from a checkout).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional

try:
    import peer_registry
except ImportError:  # running from a source checkout without installing the binding
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bindings" / "python" / "src"))
    import peer_registry

TOOLS: List[Dict[str, Any]] = [
    {"name": "echo", "description": "Returns its arguments.", "inputSchema": {"type": "object"}},
    {"name": "time", "description": "Returns the server's clock.", "inputSchema": {"type": "object"}},
]


def handle_rpc(request: Any) -> Optional[Dict[str, Any]]:
    """One JSON-RPC 2.0 request in, its response out (None for a notification)."""
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or "method" not in request:
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}}
    if "id" not in request:
        return None
    method = request["method"]
    if method == "ping":
        return {"jsonrpc": "2.0", "id": request["id"], "result": {}}
    if method == "tools/list":
        return {"jsonrpc": "2.0", "id": request["id"], "result": {"tools": TOOLS}}
    return {"jsonrpc": "2.0", "id": request["id"],
            "error": {"code": -32601, "message": f"Method not found: {method}"}}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        if self.path != "/mcp":
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            response = handle_rpc(json.loads(body))
        except ValueError:
            response = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
        if response is None:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(response).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep stderr for real problems


def main() -> int:
    server_id = sys.argv[1] if len(sys.argv) > 1 else "python-example"
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:  # bound and listening here
        port = httpd.server_address[1]
        serving = threading.Thread(target=httpd.serve_forever, daemon=True)
        serving.start()
        with peer_registry.registered(
            id=server_id,
            name="Python example server",
            url=f"http://127.0.0.1:{port}/mcp",
            transport="http",
            tools=[tool["name"] for tool in TOOLS],
        ) as entry:
            print(f"{entry['id']} listening on {entry['url']}", flush=True)
            stop.wait()
        httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
