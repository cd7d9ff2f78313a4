"""A real MCPServer (official SDK) for the probe tests, recording every HTTP request it gets.

    python3 mcp_fixture_server.py http|sse LOG_FILE

Binds 127.0.0.1 on a free port, prints the port, then serves the SDK's streamable HTTP app
(``/mcp``) or legacy SSE app (``/sse`` + ``/messages/``) through uvicorn. Each request is
appended to LOG_FILE as a JSON line once its response starts: method, path, the JSON-RPC
method of a POST body, the Mcp-Session-Id and Authorization headers, the response status.
With $FIXTURE_BEARER set, a request without ``Authorization: Bearer $FIXTURE_BEARER`` gets 401.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any, Dict

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("probe-fixture")


@server.tool()
def hello() -> str:
    return "hello"


def main() -> None:
    transport, log_path = sys.argv[1], sys.argv[2]
    app = server.streamable_http_app() if transport == "http" else server.sse_app()
    log = open(log_path, "a", buffering=1)

    async def recording(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = bytearray()
        bearer = os.environ.get("FIXTURE_BEARER")
        if bearer and headers.get("authorization") != f"Bearer {bearer}":
            log.write(json.dumps({"method": scope["method"], "path": scope["path"], "rpc": None, "session": None,
                                  "authorization": headers.get("authorization"), "status": 401}) + "\n")
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def receive_recorded() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def send_recorded(message: Any) -> None:
            if message["type"] == "http.response.start":
                try:
                    rpc = json.loads(body)["method"] if body else None
                except (ValueError, KeyError, TypeError):
                    rpc = "?"
                log.write(json.dumps({
                    "method": scope["method"], "path": scope["path"], "rpc": rpc,
                    "session": headers.get("mcp-session-id"),
                    "authorization": headers.get("authorization"),
                    "status": message["status"],
                }) + "\n")
            await send(message)

        await app(scope, receive_recorded, send_recorded)

    sock = socket.create_server(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(recording, log_level="warning", lifespan="on")).run(sockets=[sock])


if __name__ == "__main__":
    main()
