"""Real parts for the cluster agent's tests and benchmark: a 3-member etcd cluster on loopback
ports, and "machines" — each a registry directory of its own with a `peer-registry agent`.

Nothing here is a double: the etcd members are real `etcd` processes (Debian's etcd-server),
killed with SIGKILL for real; the agents are the real CLI; registrants are real processes
holding real leases (registry-crowd-worker). What a loopback-only setup cannot show (separate
kernels, real network partitions and latency) is said in docs/CLUSTER.md.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

ETCD_INSTALL = "apt-get update && apt-get install -y etcd-server"


def require_etcd() -> str:
    """The etcd binary; installs Debian's etcd-server when missing and root (as the other suites
    install their tools), else stops with the exact command."""
    path = shutil.which("etcd")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"cluster: installing etcd: {ETCD_INSTALL}", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "etcd-server"], check=True, env=env)
        path = shutil.which("etcd")
        if path:
            return path
    raise SystemExit(f"cluster: etcd is not installed; run: sudo sh -c '{ETCD_INSTALL}'")


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what} (last: {last!r})")


class EtcdCluster:
    """Three etcd members on 127.0.0.1, each a real process with its own data directory."""

    def __init__(self, root: str, members: int = 3):
        self.etcd = require_etcd()
        self.root = root
        ports = free_ports(2 * members)
        self.names = [f"m{i + 1}" for i in range(members)]
        self.client_ports = ports[:members]
        self.peer_ports = ports[members:]
        self.token = f"peer-registry-test-{os.getpid()}-{int(time.time())}"
        self.procs: dict[str, subprocess.Popen | None] = {n: None for n in self.names}
        self.initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer_ports))

    @property
    def endpoints(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.client_ports]

    def start(self, name: str):
        i = self.names.index(name)
        data = os.path.join(self.root, f"etcd-{name}")
        log = open(os.path.join(self.root, f"etcd-{name}.log"), "ab")
        cp, pp = self.client_ports[i], self.peer_ports[i]
        self.procs[name] = subprocess.Popen([
            self.etcd, "--name", name, "--data-dir", data,
            "--listen-client-urls", f"http://127.0.0.1:{cp}", "--advertise-client-urls", f"http://127.0.0.1:{cp}",
            "--listen-peer-urls", f"http://127.0.0.1:{pp}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
            "--initial-cluster", self.initial, "--initial-cluster-state", "new", "--initial-cluster-token", self.token,
            # A loaded 2-core machine: generous election timing, so members do not flap.
            "--heartbeat-interval", "100", "--election-timeout", "1500", "--log-level", "warn",
        ], stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def start_all(self):
        for n in self.names:
            if self.procs[n] is None:
                self.start(n)
        self.wait_healthy()

    def kill(self, name: str):
        p = self.procs[name]
        if p is not None:
            p.send_signal(signal.SIGKILL)
            p.wait()
        self.procs[name] = None

    def kill_all(self):
        for n in self.names:
            self.kill(n)

    def request(self, endpoint: str, path: str, body: dict, timeout: float = 2.0) -> dict:
        req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def wait_healthy(self, timeout: float = 60):
        def healthy():
            for n, ep in zip(self.names, self.endpoints):
                if self.procs[n] is None:
                    continue
                try:
                    with urllib.request.urlopen(ep + "/health", timeout=1) as r:
                        if json.loads(r.read()).get("health") != "true":
                            return False
                except Exception:
                    return False
            return True
        wait_until(healthy, timeout, "every running etcd member healthy", 0.2)

    def keys(self, prefix: str = "/peer-registry/v1/") -> list[str]:
        import base64
        end = bytearray(prefix.encode())
        end[-1] += 1
        for n, ep in zip(self.names, self.endpoints):
            if self.procs[n] is None:
                continue
            r = self.request(ep, "/v3/kv/range", {"key": base64.b64encode(prefix.encode()).decode(),
                                                  "range_end": base64.b64encode(bytes(end)).decode(), "keys_only": True})
            return sorted(base64.b64decode(kv["key"]).decode() for kv in r.get("kvs", []))
        raise AssertionError("no etcd member is running")

    def stop(self):
        self.kill_all()


class Machine:
    """One "machine": a registry directory of its own and (when started) its agent."""

    def __init__(self, root: str, name: str, cli: str, worker: str, etcd: EtcdCluster,
                 advertise: str | None = None, lease_ttl: int = 3):
        self.name, self.cli, self.worker, self.etcd = name, cli, worker, etcd
        self.advertise, self.lease_ttl = advertise, lease_ttl
        self.dir = os.path.join(root, f"machine-{name}")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.registry = os.path.join(self.dir, "servers.json")
        self.view = os.path.join(self.dir, "servers.cluster.json")
        self.agent: subprocess.Popen | None = None
        self.agent_log = os.path.join(self.dir, "agent.log")
        self.holders: list[subprocess.Popen] = []

    # The agent.

    def start_agent(self, endpoints: list[str] | None = None):
        args = [self.cli, "agent", "--registry", self.registry, "--etcd", ",".join(endpoints or self.etcd.endpoints),
                "--node", self.name, "--lease-ttl", str(self.lease_ttl)]
        if self.advertise:
            args += ["--advertise", self.advertise]
        self.agent = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.agent_log, "ab"),
                                      stdin=subprocess.DEVNULL)
        wait_until(lambda: self.view_state() == "connected", 30, f"agent {self.name} connected")

    def kill_agent(self):
        if self.agent is not None:
            self.agent.send_signal(signal.SIGKILL)
            self.agent.wait()
            self.agent = None

    def stop_agent(self):
        if self.agent is not None:
            self.agent.send_signal(signal.SIGTERM)
            self.agent.wait(timeout=20)
            self.agent = None

    def view_state(self) -> str | None:
        try:
            with open(self.view) as f:
                return json.load(f).get("etcd")
        except (OSError, ValueError):
            return None

    def log(self) -> str:
        with open(self.agent_log, errors="replace") as f:
            return f.read()

    # Registrants.

    def cli_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([self.cli, *args, "--registry", self.registry], capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"peer-registry {' '.join(args)}: exit {p.returncode}: {p.stderr}")
        return p

    def register_static(self, entry: dict):
        entry = dict(entry, liveness=entry.get("liveness", "none"))
        path = os.path.join(self.dir, f"entry-{entry['id']}.json")
        with open(path, "w") as f:
            json.dump(entry, f)
        self.cli_run("register", "--file", path, "--replace")

    def unregister(self, id: str):
        self.cli_run("unregister", id)

    def hold(self, entries: list[dict]) -> subprocess.Popen:
        """A process that registers `entries` with lease liveness and holds them until killed."""
        path = os.path.join(self.dir, f"hold-{len(self.holders)}.json")
        with open(path, "w") as f:
            json.dump(entries, f)
        p = subprocess.Popen([self.worker, "hold-many", self.registry, path], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        if not line.startswith("ACK "):
            raise AssertionError(f"holder on {self.name}: {line!r} {p.stderr.read()}")
        self.holders.append(p)
        return p

    # Reading, as a user would.

    def list(self, scope: str = "cluster") -> list[dict]:
        p = self.cli_run("list", "--json", "--scope", scope)
        return json.loads(p.stdout)["servers"]

    def remote(self) -> list[dict]:
        return [e for e in self.list() if "node" in e]

    def remote_keys(self) -> set[str]:
        return {f"{e['node']}/{e['id']}" for e in self.remote()}

    @contextlib.contextmanager
    def serving(self):
        """`peer-registry serve` on this machine's registry: yields (base URL, token)."""
        serve = subprocess.Popen([self.cli, "serve", "--port", "0", "--registry", self.registry],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url = serve.stdout.readline().strip()  # http://127.0.0.1:PORT/?token=...
            base, token = url.split("/?token=")
            yield base, token
        finally:
            serve.terminate()
            serve.wait(timeout=20)

    def stop(self):
        for p in self.holders:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.kill_agent()


def entry(id: str, url: str, scope: str | None = "cluster", tools: list[str] | None = None, **extra) -> dict:
    e = {"id": id, "url": url, "capabilities": {"tools": tools or []}}
    if scope is not None:
        e["scope"] = scope
    e.update(extra)
    return e


def tempdir() -> str:
    return tempfile.mkdtemp(prefix="peer-registry-cluster-")
