"""A small Chrome DevTools Protocol client and a WebSocket test server, standard library only.

The browser test drives Debian's `chromium --headless` through its remote-debugging WebSocket
(RFC 6455 framing, written out here so the test needs nothing from PyPI), and gives discovery.js
a WebSocket server to find when it falls back to scanning ports.
"""
import base64
import hashlib
import json
import os
import socket
import struct
import threading
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


class WebSocketClient:
    """A blocking WebSocket client: text messages only, which is all CDP uses."""

    def __init__(self, host, port, path, timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the DevTools endpoint closed during the handshake")
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"WebSocket handshake refused: {head.decode(errors='replace')}")
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if accept.encode() not in head:
            raise ConnectionError("bad Sec-WebSocket-Accept")

    def send(self, text):
        payload = text.encode()
        header = bytearray([0x81])  # FIN, text
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        header += mask
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + masked)

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("the WebSocket closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self):
        """The next text message (continuation frames joined); answers pings."""
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, fin = b0 & 0x0F, b0 & 0x80
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("the WebSocket was closed by the browser")
            if opcode == 0x9:
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                continue
            message += payload
            if fin:
                return message.decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class CDP:
    """Commands and events over one browser connection; pages are flattened sessions."""

    def __init__(self, port, browser_path, timeout=30):
        self.ws = WebSocketClient("127.0.0.1", port, browser_path, timeout=timeout)
        self.next_id = 0
        self.events = []

    def call(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        self.ws.sock.settimeout(timeout)
        while True:
            reply = json.loads(self.ws.receive())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def open_page(self, width=1280, height=760):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call("Log.enable")
        page.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        return page

    def close(self):
        self.ws.close()


class Page:
    def __init__(self, cdp, session, target):
        self.cdp, self.session, self.target = cdp, session, target

    def call(self, method, params=None, timeout=30):
        return self.cdp.call(method, params, session=self.session, timeout=timeout)

    def navigate(self, url):
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise RuntimeError(f"navigate {url}: {result['errorText']}")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=15.0, interval=0.02):
        """Evaluates `expression` until it is truthy; returns its value, or raises after `timeout`.
        An exception counts as not yet (the page may still be loading: an element not there)."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            try:
                value = self.evaluate(expression)
                if value:
                    return value
            except RuntimeError as error:
                last_error = error
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not true within {timeout} s: {expression}\n"
                                   f"last error: {last_error}\n{self.console()}")
            time.sleep(interval)

    def screenshot(self, path):
        """A PNG of the page's content (the viewport's width, the content's height up to the viewport's)."""
        width, height = self.evaluate("[innerWidth, Math.min(innerHeight, document.body.scrollHeight + 8)]")
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = self.call("Page.captureScreenshot", {"format": "png", "clip": clip})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def console(self):
        """What the page logged (console calls, exceptions, network errors), for failure messages."""
        lines = []
        for event in self.cdp.events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled":
                lines.append("console." + params.get("type", "") + ": " + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif event["method"] == "Runtime.exceptionThrown":
                lines.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:500])
            elif event["method"] == "Log.entryAdded":
                entry = params.get("entry", {})
                lines.append(f"log.{entry.get('level')}: {entry.get('text')} {entry.get('url', '')}")
        return "\n".join(lines)


class WebSocketServer:
    """Accepts WebSocket handshakes on 127.0.0.1 and holds the connections open: something for
    discovery.js's port scan to find. With `speaks_mcp`, it answers an MCP `initialize` text
    frame with a result (as seed 001's WebSocket MCP servers do); without, it never answers (a
    WebSocket server that is not an MCP server)."""

    def __init__(self, speaks_mcp=True, name="test-ws-mcp", port=0):
        self.speaks_mcp = speaks_mcp
        self.name = name
        self.initializes = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.handshakes = 0
        self.connections = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn):
        try:
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            key = ""
            for line in head.decode(errors="replace").split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            self.handshakes += 1
            self.connections.append(conn)
            if self.speaks_mcp:
                self._answer(conn)
        except OSError:
            conn.close()

    @staticmethod
    def _read_frame(conn):
        """One client frame (masked, as RFC 6455 requires): (opcode, payload)."""
        def exactly(n):
            data = b""
            while len(data) < n:
                chunk = conn.recv(n - len(data))
                if not chunk:
                    raise OSError("closed")
                data += chunk
            return data
        b0, b1 = exactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack(">H", exactly(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", exactly(8))[0]
        mask = exactly(4) if b1 & 0x80 else b"\0\0\0\0"
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(exactly(length)))
        return b0 & 0x0F, payload

    def _answer(self, conn):
        while True:
            opcode, payload = self._read_frame(conn)
            if opcode == 8:
                return
            if opcode != 1:
                continue
            message = json.loads(payload)
            if message.get("method") != "initialize":
                continue
            self.initializes += 1
            answer = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {
                "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                "serverInfo": {"name": self.name, "version": "1"}}}).encode()
            header = bytes([0x81]) + (bytes([len(answer)]) if len(answer) < 126 else bytes([126]) + struct.pack(">H", len(answer)))
            conn.sendall(header + answer)

    def close(self):
        self.listener.close()
        for conn in self.connections:
            conn.close()
