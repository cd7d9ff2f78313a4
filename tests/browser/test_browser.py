#!/usr/bin/env python3
"""A real browser against `peer-registry serve`: Debian's chromium, headless, driven over the
DevTools protocol (tests/browser/cdp.py, standard library only).

It opens the status page (served by peer-registry) and a test page on another loopback origin
that uses bindings/browser/discovery.js, registers servers AFTER both pages loaded, and checks
they appear without a reload; then health changes, unregistrations, a process dying, the port-scan
fallback, and an EventSource reconnecting after the server restarts. It measures the time from a
registration (the registry file's write) to each page showing it, prints the figures, and saves
screenshots under build/test-browser/.

    python3 tests/browser/test_browser.py [--bin PATH] [--update-screenshot] [unittest options]

--update-screenshot copies the status page's screenshot to docs/status-page.png.
chromium: installed with apt-get when missing and running as root, else the test stops and
prints the command.
"""
import argparse
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import CDP, WebSocketServer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("PEER_REGISTRY_BIN", os.path.join(ROOT, ".build", "debug", "peer-registry"))
OUT = os.path.join(ROOT, "build", "test-browser")
INSTALL = "apt-get update && apt-get install -y chromium"
UPDATE_SCREENSHOT = False
REGISTRATIONS = 10


def ensure_chromium():
    path = shutil.which("chromium")
    if path:
        return path
    if os.geteuid() != 0:
        sys.exit(f"test_browser.py: chromium is not installed. Install it with:\n    {INSTALL}")
    print(f"test_browser.py: chromium is missing; running: {INSTALL}", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(INSTALL, shell=True, env=env).returncode != 0 or not shutil.which("chromium"):
        sys.exit(f"test_browser.py: installing chromium failed; run:\n    {INSTALL}")
    return shutil.which("chromium")


class TestPageServer:
    """Serves the discovery test page and discovery.js from a loopback origin of its own."""

    FILES = {
        "/discovery-test.html": (os.path.join(ROOT, "tests", "browser", "discovery-test.html"), "text/html; charset=utf-8"),
        "/discovery.js": (os.path.join(ROOT, "bindings", "browser", "discovery.js"), "text/javascript; charset=utf-8"),
    }

    def __init__(self):
        files = self.FILES

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path, ctype = files.get(self.path.split("?", 1)[0], (None, None))
                if not path:
                    self.send_error(404)
                    return
                with open(path, "rb") as f:
                    body = f.read()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrowserTest(unittest.TestCase):
    """One browser, one registry and one server for the whole sequence (tests run in name order)."""

    latencies = {"status page": [], "discovery.js page": []}
    spawn_latencies = []

    @classmethod
    def setUpClass(cls):
        cls.chromium = ensure_chromium()
        os.makedirs(OUT, exist_ok=True)
        cls.tmp = tempfile.mkdtemp(prefix="prk-browser-")
        cls.registry = os.path.join(cls.tmp, "registry", "servers.json")
        cls.processes = []
        cls.cdp = cls.pages_server = cls.ws_server = None
        # tearDownClass does not run when setUpClass fails: stop what was started either way.
        cls.addClassCleanup(cls.stop_everything)
        cls.pid_holder = cls.spawn(["sleep", "600"])
        cls.cli("register", "--id", "journey-service", "--name", "Journey Service", "--url", "http://127.0.0.1:8080/mcp",
                "--tool", "findTrips", "--tool", "bookTrip", "--resource", "resource://journey/", "--prompt", "plan-trip")
        cls.cli("health", "journey-service", "HEALTHY", "ok")
        cls.cli("register", "--id", "docs-search", "--name", "Docs Search", "--url", "http://127.0.0.1:8090/sse",
                "--transport", "sse", "--tool", "search", "--tool", "fetchPage", "--ttl", "3600")
        cls.cli("health", "docs-search", "DEGRADED", "index rebuilding")
        cls.cli("register", "--id", "yjs-collab", "--name", "Yjs collaboration", "--url", "ws://127.0.0.1:1234",
                "--resource", "yjs://docs/", "--pid", str(cls.pid_holder.pid))
        cls.cli("health", "yjs-collab", "HEALTHY")
        cls.cli("register", "--id", "local-files", "--name", "Local files", "--transport", "stdio",
                "--tool", "readFile", "--tool", "listDir")
        cls.demo_ids = ["journey-service", "docs-search", "yjs-collab", "local-files"]

        cls.serve_port = free_port()
        cls.start_serve()
        cls.pages_server = TestPageServer()
        cls.ws_server = WebSocketServer()

        profile = os.path.join(cls.tmp, "chromium-profile")
        cls.browser_log = open(os.path.join(OUT, "chromium.log"), "w")
        cls.browser = cls.spawn([
            cls.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows", "--hide-scrollbars",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
        ], stdout=subprocess.DEVNULL, stderr=cls.browser_log)
        # Chromium writes its DevTools port and path there once it listens.
        active = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while True:
            lines = []
            if os.path.exists(active):
                with open(active) as f:
                    lines = f.read().split("\n")
            if len(lines) >= 2 and lines[1]:
                break
            if cls.browser.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (see {OUT}/chromium.log)")
            time.sleep(0.05)
        cls.cdp = CDP(int(lines[0]), lines[1])

    @classmethod
    def tearDownClass(cls):
        cls.report()

    @classmethod
    def stop_everything(cls):
        if cls.cdp:
            cls.cdp.close()
        for p in reversed(cls.processes):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
            if p.stdout:
                p.stdout.close()
        if getattr(cls, "browser_log", None):
            cls.browser_log.close()
        if cls.pages_server:
            cls.pages_server.close()
        if cls.ws_server:
            cls.ws_server.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def spawn(cls, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        cls.processes.append(p)
        return p

    @classmethod
    def cli(cls, *args):
        result = subprocess.run([BIN, *args, "--registry", cls.registry], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise AssertionError(f"peer-registry {' '.join(args)}: exit {result.returncode}: {result.stderr}")
        return result.stdout

    @classmethod
    def start_serve(cls):
        cls.serve = cls.spawn([BIN, "serve", "--registry", cls.registry, "--port", str(cls.serve_port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = cls.serve.stdout.readline().strip()  # printed once listening, with the token
        base, _, token = line.partition("?token=")
        if base != f"http://127.0.0.1:{cls.serve_port}/" or len(token) != 64:
            raise RuntimeError(f"peer-registry serve did not start: {line!r}")
        # Kept in the registry's runtime directory: the same after a restart.
        if getattr(cls, "token", token) != token:
            raise RuntimeError("the token changed across a restart")
        cls.serve_url = base.rstrip("/")
        cls.token = token

    def file_write_ms(self):
        """When the registry file was last written (ms since the epoch, the clock Date.now() uses)."""
        return os.stat(self.registry).st_mtime_ns / 1e6

    # MARK: - tests

    def test_1_status_page_lists_the_servers(self):
        page = self.cdp.open_page()
        type(self).status_page = page
        # As a person would: the URL serve printed. The token moves into a cookie and out of the
        # address bar.
        page.navigate(f"{self.serve_url}/?token={self.token}")
        page.wait_for("document.getElementById('connection').dataset.state === 'live'")
        self.assertEqual(page.evaluate("location.href"), self.serve_url + "/")
        rows = page.evaluate("[...document.querySelectorAll('#servers tbody tr')].map(r => r.dataset.id)")
        self.assertEqual(rows, self.demo_ids)
        self.assertEqual(page.evaluate("document.querySelector('tr[data-id=\"docs-search\"] td.health').dataset.status"), "DEGRADED")
        generation = json.loads(self.cli("list", "--json"))["generation"]
        self.assertEqual(page.evaluate("document.getElementById('generation').textContent"), str(generation))

    def test_2_discovery_page_reads_the_registry(self):
        page = self.cdp.open_page(width=900, height=600)
        type(self).discovery_page = page
        page.navigate(f"http://127.0.0.1:{self.pages_server.port}/discovery-test.html?registry={self.serve_url}"
                      f"#peer-registry-token={self.token}")
        page.wait_for("window.__ready === true")
        self.assertEqual(page.evaluate("window.__source"), "registry", page.console())
        self.assertEqual(page.evaluate("window.__ids"), self.demo_ids)
        self.assertEqual(page.evaluate("window.__sources"), ["registry"])
        # The fragment left the address bar; the token stays in this tab only.
        self.assertNotIn(self.token, page.evaluate("location.href"))
        self.assertEqual(page.evaluate("sessionStorage.length"), 1)

    def test_2b_pages_without_the_token_get_nothing(self):
        # Another page of the same browser on another host name has no cookie (cookies are per
        # host): the status page says what to do, and nothing of the registry reaches it.
        page = self.cdp.open_page(width=900, height=600)
        page.navigate(f"http://localhost:{self.serve_port}/")
        page.wait_for("document.getElementById('connection').dataset.state === 'unauthorized'", timeout=15)
        self.assertEqual(page.evaluate("document.querySelectorAll('#servers tbody tr').length"), 0)
        self.assertIn("?token=", page.evaluate("document.getElementById('problem').textContent"))
        # A discovery.js page without the token: the registry refuses, the scan finds nothing.
        other = self.cdp.open_page(width=900, height=600)
        other.navigate(f"http://localhost:{self.pages_server.port}/discovery-test.html?registry={self.serve_url}&scan=")
        other.wait_for("window.__ready === true")
        self.assertEqual(other.evaluate("window.__source"), "offline")
        self.assertIn("401", other.evaluate("window.__registryError"))
        self.assertEqual(other.evaluate("window.__ids"), [])

    def test_3_registrations_after_load_appear_without_reload(self):
        status, discovery = self.status_page, self.discovery_page
        # Marks that a reload would wipe out.
        for page in (status, discovery):
            page.evaluate("window.__noReload = 'still here'")
        status.evaluate("""(() => {
            window.__seen = {};
            const record = () => {
              const now = Date.now();
              for (const tr of document.querySelectorAll('#servers tbody tr'))
                if (!(tr.dataset.id in window.__seen)) window.__seen[tr.dataset.id] = now;
            };
            record();
            new MutationObserver(record).observe(document.querySelector('#servers tbody'), { childList: true, subtree: true });
            return true;
        })()""")
        for i in range(1, REGISTRATIONS + 1):
            server_id = f"late-{i}"
            started_ms = time.time() * 1000
            self.cli("register", "--id", server_id, "--url", f"ws://127.0.0.1:{20000 + i}", "--tool", f"tool{i}")
            written_ms = self.file_write_ms()
            for page, name in ((status, "status page"), (discovery, "discovery.js page")):
                seen = page.wait_for(f"window.__seen[{json.dumps(server_id)}]", timeout=10)
                self.latencies[name].append(seen - written_ms)
                if name == "status page":
                    self.spawn_latencies.append(seen - started_ms)
        for page in (status, discovery):
            self.assertEqual(page.evaluate("window.__noReload"), "still here")
            self.assertEqual(page.evaluate("performance.getEntriesByType('navigation').length"), 1)
        expected = self.demo_ids + [f"late-{i}" for i in range(1, REGISTRATIONS + 1)]
        self.assertEqual(status.evaluate("[...document.querySelectorAll('#servers tbody tr')].map(r => r.dataset.id)"), expected)
        self.assertEqual(discovery.evaluate("window.__ids"), expected)

        # A health change, then unregistrations, arrive the same way.
        self.cli("health", "late-1", "DOWN", "stopped answering")
        status.wait_for("document.querySelector('tr[data-id=\"late-1\"] td.health').dataset.status === 'DOWN'", timeout=10)
        discovery.wait_for("window.__health['late-1'] === 'DOWN'", timeout=10)
        for i in range(2, REGISTRATIONS + 1):
            self.cli("unregister", f"late-{i}")
        status.wait_for(f"document.querySelectorAll('#servers tbody tr').length === {len(self.demo_ids) + 1}", timeout=10)
        discovery.wait_for(f"window.__ids.length === {len(self.demo_ids) + 1}", timeout=10)
        self.assertEqual(discovery.evaluate("window.__ids"), self.demo_ids + ["late-1"])

    def test_3b_long_and_right_to_left_names_stay_in_their_cells(self):
        status = self.status_page
        self.cli("register", "--id", "long-name", "--name", "N" * 4096, "--url", "http://127.0.0.1:8301/mcp")
        self.cli("register", "--id", "rtl-name", "--name", "\u202eevil name", "--url", "http://127.0.0.1:8302/mcp")
        self.cli("register", "--id", "supervised", "--url", "http://127.0.0.1:8303/mcp",
                 "--metadata", json.dumps({"supervisor": {"state": "running", "restarts": 2}}))
        status.wait_for("!!document.querySelector('tr[data-id=\"supervised\"]')", timeout=10)
        # A 4,096-character name is cut, and its row fits the window.
        self.assertLessEqual(status.evaluate("document.documentElement.scrollWidth"), status.evaluate("window.innerWidth") + 1)
        right = status.evaluate("document.querySelector('tr[data-id=\"long-name\"] td.health').getBoundingClientRect().right")
        self.assertLessEqual(right, status.evaluate("window.innerWidth"))
        shown = status.evaluate("document.querySelector('tr[data-id=\"long-name\"] td.server b').textContent")
        self.assertLess(len(shown), 200)
        # Every value is isolated: the override inside the name reverses nothing after it.
        isolated = status.evaluate("""(() => {
            const cell = document.querySelector('tr[data-id="rtl-name"] td.server');
            const name = cell.querySelector('b bdi');
            const id = cell.querySelector('small bdi');
            return [name && name.dir, id && id.textContent, id && getComputedStyle(id).direction,
                    getComputedStyle(document.querySelector('tr[data-id="rtl-name"] td.url')).direction];
        })()""")
        self.assertEqual(isolated, ["auto", "rtl-name", "ltr", "ltr"])
        # A supervised server shows its state.
        self.assertEqual(status.evaluate("document.querySelector('tr[data-id=\"supervised\"] .supervisor').textContent"),
                         "supervised: running · 2 restarts")
        status.screenshot(os.path.join(OUT, "status-page-hostile-names.png"))
        for server_id in ("long-name", "rtl-name", "supervised"):
            self.cli("unregister", server_id)
        status.wait_for("!document.querySelector('tr[data-id=\"supervised\"]')", timeout=10)

    def test_4_screenshots(self):
        status_png = os.path.join(OUT, "status-page.png")
        # Let the highlight of the last change fade (1.6 s), for a calm picture.
        self.status_page.evaluate("new Promise(r => setTimeout(() => r(true), 1700))")
        self.status_page.screenshot(status_png)
        self.discovery_page.screenshot(os.path.join(OUT, "discovery-page.png"))
        with open(status_png, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertGreater(len(data), 10_000)
        print(f"\nscreenshots: {status_png}, {os.path.join(OUT, 'discovery-page.png')}", file=sys.stderr)
        if UPDATE_SCREENSHOT:
            shutil.copyfile(status_png, os.path.join(ROOT, "docs", "status-page.png"))
            print("copied to docs/status-page.png", file=sys.stderr)

    def test_5_a_dying_process_disappears(self):
        self.pid_holder.kill()
        self.pid_holder.wait(timeout=10)
        self.status_page.wait_for("!document.querySelector('tr[data-id=\"yjs-collab\"]')", timeout=10)
        self.discovery_page.wait_for("!window.__ids.includes('yjs-collab')", timeout=10)

    def test_6_scan_fallback_when_the_registry_server_is_unreachable(self):
        page = self.cdp.open_page(width=900, height=600)
        dead = free_port()
        closed = free_port()
        silent = WebSocketServer(speaks_mcp=False)  # accepts WebSockets, is no MCP server
        self.addCleanup(silent.close)
        page.navigate(f"http://127.0.0.1:{self.pages_server.port}/discovery-test.html"
                      f"?registry=http://127.0.0.1:{dead}&scan={self.ws_server.port},{closed},{silent.port}")
        page.wait_for("window.__ready === true", timeout=15)
        self.assertEqual(page.evaluate("window.__source"), "scan")
        self.assertEqual(page.evaluate("window.__sources"), ["scan"])
        # Only the port that answered initialize: an open socket is not an MCP server.
        self.assertEqual(page.evaluate("window.__ids"), [f"port-{self.ws_server.port}"])
        self.assertGreaterEqual(self.ws_server.initializes, 1)
        self.assertGreaterEqual(silent.handshakes, 1)
        elapsed = page.evaluate("window.__elapsedMs")
        # The registry fetch fails at once (connection refused), then every port is probed in
        # parallel with a 500 ms timeout: well under the 11 x 500 ms a sequential scan could take.
        self.assertLess(elapsed, 3000)
        print(f"\nscan fallback: found port-{self.ws_server.port} in {elapsed:.0f} ms", file=sys.stderr)
        page.screenshot(os.path.join(OUT, "discovery-scan-fallback.png"))

    def test_6b_scan_mode_scans_again_and_reports_offline(self):
        page = self.cdp.open_page(width=900, height=600)
        dead = free_port()
        later = free_port()
        page.navigate(f"http://127.0.0.1:{self.pages_server.port}/discovery-test.html"
                      f"?registry=http://127.0.0.1:{dead}&scan={later}&rescan=300")
        page.wait_for("window.__ready === true", timeout=15)
        self.assertEqual(page.evaluate("window.__source"), "offline")
        # A server that starts after the page loaded is found by a later scan.
        late = WebSocketServer(port=later, name="late-ws")
        self.addCleanup(late.close)
        page.wait_for(f"window.__ids.includes('port-{later}')", timeout=10)
        self.assertEqual(page.evaluate("window.__sources"), ["offline", "scan"])
        # The core's rule for ids of entries without one, as the registry derives them.
        ids = page.evaluate("import('/discovery.js').then(m => [m.legacyId(1234), m.legacyId(1234, ['port-1234']),"
                            " m.legacyId(1234, new Set(['port-1234', 'port-1234-2']))])")
        self.assertEqual(ids, ["port-1234", "port-1234-2", "port-1234-3"])

    def test_6c_the_types_declare_every_export(self):
        node = shutil.which("node")
        if not node:
            self.fail("node is needed to list discovery.js's exports: apt-get install -y nodejs")
        script = ("import(process.argv[1]).then(m => console.log(JSON.stringify(Object.keys(m).sort())))")
        exports = json.loads(subprocess.run([node, "-e", script, os.path.join(ROOT, "bindings", "browser", "discovery.js")],
                                            capture_output=True, text=True, timeout=30, check=True).stdout)
        with open(os.path.join(ROOT, "bindings", "browser", "discovery.d.ts")) as f:
            declared = f.read()
        for name in exports:
            self.assertRegex(declared, rf"export (function|const) {name}\b", f"discovery.d.ts does not declare {name}")
        self.assertIn("discover", exports)

    def test_7_the_page_resumes_after_the_server_restarts(self):
        status = self.status_page
        self.serve.terminate()
        self.assertEqual(self.serve.wait(timeout=10), 0)
        status.wait_for("document.getElementById('connection').dataset.state === 'reconnecting'", timeout=10)
        # Changes while the server is down reach the page once EventSource reconnects (it sends
        # Last-Event-ID; the generation moved on, so the server sends the full state).
        self.cli("register", "--id", "while-down", "--url", "http://127.0.0.1:8181/mcp")
        type(self).start_serve()
        status.wait_for("!!document.querySelector('tr[data-id=\"while-down\"]')", timeout=15)
        self.assertEqual(status.evaluate("document.getElementById('connection').dataset.state"), "live")
        self.discovery_page.wait_for("window.__ids.includes('while-down')", timeout=15)
        self.assertEqual(status.evaluate("window.__noReload"), "still here")
        # discovery.js said so while the server was down (nothing on its scan ports), and after.
        self.assertEqual(self.discovery_page.evaluate("window.__sources"), ["registry", "offline", "registry"])

    @classmethod
    def report(cls):
        if not cls.latencies["status page"]:
            return
        print("\nregistration -> page showing it (Server-Sent Events), from the registry file's write,"
              f" over {len(cls.latencies['status page'])} registrations:", file=sys.stderr)
        for name, values in cls.latencies.items():
            print(f"  {name:18} median {statistics.median(values):6.1f} ms   min {min(values):6.1f} ms   max {max(values):6.1f} ms",
                  file=sys.stderr)
        print(f"  including starting the `peer-registry register` process: median {statistics.median(cls.spawn_latencies):.1f} ms",
              file=sys.stderr)
        print("  seed 001 polled every 5 s: 2500 ms on average, up to 5000 ms.", file=sys.stderr)
        with open(os.path.join(OUT, "latency.json"), "w") as f:
            json.dump({"from_file_write_ms": cls.latencies, "from_cli_start_ms": cls.spawn_latencies}, f, indent=2)


def main():
    global BIN, UPDATE_SCREENSHOT
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--bin", default=BIN)
    parser.add_argument("--update-screenshot", action="store_true")
    args, rest = parser.parse_known_args()
    BIN = os.path.abspath(args.bin)
    UPDATE_SCREENSHOT = args.update_screenshot
    if not os.access(BIN, os.X_OK):
        sys.exit(f"test_browser.py: no peer-registry binary at {BIN}: build it (swift build --product peer-registry) or pass --bin")
    ensure_chromium()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
