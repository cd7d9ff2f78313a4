"""`peer-registry agent` against a real 3-member etcd cluster (docs/CLUSTER.md).

Three "machines" A, B, C — separate registry directories, an agent each — share one etcd
cluster of three real members on loopback ports. A advertises 127.0.0.2, B 127.0.0.3; C has no
--advertise (its loopback entries must not be published). Lease TTL 3 s keeps the suite short.
The tests run in file order and share the cluster; each leaves it as it found it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cluster import EtcdCluster, Machine, entry, tempdir, wait_until

CLI = os.environ["PEER_REGISTRY_BIN"]
WORKER = os.environ["PEER_REGISTRY_WORKER"]
TTL = 3


@pytest.fixture(scope="module")
def world():
    root = tempdir()
    etcd = EtcdCluster(root)
    etcd.start_all()
    machines = {
        "A": Machine(root, "A", CLI, WORKER, etcd, advertise="127.0.0.2", lease_ttl=TTL),
        "B": Machine(root, "B", CLI, WORKER, etcd, advertise="127.0.0.3", lease_ttl=TTL),
        "C": Machine(root, "C", CLI, WORKER, etcd, advertise=None, lease_ttl=TTL),
    }
    for m in machines.values():
        m.start_agent()
    yield etcd, machines
    for m in machines.values():
        m.stop()
    etcd.stop()
    if os.environ.get("KEEP_CLUSTER_TMP") is None:
        shutil.rmtree(root, ignore_errors=True)


def by_key(entries):
    return {f"{e['node']}/{e['id']}": e for e in entries if "node" in e}


def test_publish_and_withdraw(world):
    etcd, m = world
    A, B, C = m["A"], m["B"], m["C"]
    A.register_static(entry("pub1", "http://10.1.2.3:8080/mcp", tools=["forecast"]))
    seen = wait_until(lambda: by_key(B.remote()).get("A/pub1"), 10, "A/pub1 on B")
    assert seen["url"] == "http://10.1.2.3:8080/mcp"
    assert seen["scope"] == "cluster"
    wait_until(lambda: "A/pub1" in C.remote_keys(), 10, "A/pub1 on C")
    assert "/peer-registry/v1/A/pub1" in etcd.keys()
    # Not in B's local scope: remote entries appear only to callers that ask for cluster scope.
    assert [e["id"] for e in B.list("local")] == []
    # A does not mirror its own entries: it has them locally, without node.
    assert [e for e in A.list() if e["id"] == "pub1"] == [e for e in A.list("local") if e["id"] == "pub1"]
    assert "node" not in A.list("local")[0]
    A.unregister("pub1")
    wait_until(lambda: "A/pub1" not in B.remote_keys(), 10, "A/pub1 withdrawn from B")
    wait_until(lambda: "A/pub1" not in C.remote_keys(), 10, "A/pub1 withdrawn from C")
    assert "/peer-registry/v1/A/pub1" not in etcd.keys()


def test_scope_defaults_to_local(world):
    etcd, m = world
    A, B = m["A"], m["B"]
    A.register_static(entry("private1", "http://10.1.2.3:9001/mcp", scope=None))
    A.register_static(entry("private2", "http://10.1.2.3:9002/mcp", scope="local"))
    A.register_static(entry("shared1", "http://10.1.2.3:9003/mcp"))
    # shared1 arriving proves A's agent processed the writes that came before it.
    wait_until(lambda: "A/shared1" in B.remote_keys(), 10, "A/shared1 on B")
    assert not {"A/private1", "A/private2"} & B.remote_keys()
    assert not [k for k in etcd.keys() if "private" in k]
    for id in ("private1", "private2", "shared1"):
        A.unregister(id)
    wait_until(lambda: "A/shared1" not in B.remote_keys(), 10, "A/shared1 withdrawn")


def test_bad_scope_is_refused_and_changes_nothing(world):
    _, m = world
    A = m["A"]
    before = A.list("local")
    for bad in ({"scope": "global"}, {"scope": 1}, {"node": "B"}, {"stale": True}):
        path = os.path.join(A.dir, "bad.json")
        with open(path, "w") as f:
            json.dump(dict(entry("bad", "http://10.0.0.1:1/mcp", scope=None), liveness="none", **bad), f)
        p = A.cli_run("register", "--file", path, check=False)
        assert p.returncode == 1, (bad, p.stderr)
        assert "scope" in p.stderr or "cluster agent" in p.stderr
    assert A.list("local") == before
    p = A.cli_run("list", "--scope", "galaxy", check=False)
    assert p.returncode == 64


def test_loopback_urls_are_rewritten_or_refused(world):
    _, m = world
    A, B, C = m["A"], m["B"], m["C"]
    A.register_static(entry("loop-a", "http://127.0.0.1:7001/mcp", headers={"Authorization": "Bearer secret-a"}))
    A.register_static(entry("loop-a6", "http://[::1]:7002/mcp"))
    A.register_static(entry("loop-name", "http://localhost:7003/mcp"))
    C.register_static(entry("loop-c", "http://127.0.0.1:7004/mcp"))
    C.register_static(entry("reach-c", "http://c.example.test:7005/mcp"))
    remote = wait_until(lambda: (lambda r: r if {"A/loop-a", "A/loop-a6", "A/loop-name", "C/reach-c"} <= set(r) else None)(by_key(B.remote())),
                        10, "A's and C's entries on B")
    assert remote["A/loop-a"]["url"] == "http://127.0.0.2:7001/mcp"
    assert remote["A/loop-a6"]["url"] == "http://127.0.0.2:7002/mcp"
    assert remote["A/loop-name"]["url"] == "http://127.0.0.2:7003/mcp"
    assert remote["C/reach-c"]["url"] == "http://c.example.test:7005/mcp"
    # Secrets stay on their machine.
    assert "headers" not in remote["A/loop-a"]
    view = open(B.view).read()
    assert "secret-a" not in view
    # C has no --advertise: its loopback entry is not published, and the log says why.
    assert "C/loop-c" not in remote
    wait_until(lambda: "loop-c" in C.log() and "--advertise" in C.log(), 10, "C's note about loop-c")
    for id in ("loop-a", "loop-a6", "loop-name"):
        A.unregister(id)
    for id in ("loop-c", "reach-c"):
        C.unregister(id)
    wait_until(lambda: not B.remote_keys(), 10, "B's view empty again")


def test_resolve_prefers_local_on_ties_and_watch_sees_remote(world):
    _, m = world
    A, B = m["A"], m["B"]
    watch = subprocess.Popen([CLI, "watch", "--json", "--scope", "cluster", "--registry", B.registry],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.5)  # the watch has its baseline
        A.register_static(entry("weather-a", "http://10.1.2.3:8101/mcp", tools=["forecast", "only-on-a"]))
        event = json.loads(watch.stdout.readline())
        assert [(e["id"], e["node"]) for e in event["added"]] == [("weather-a", "A")]
        # A tool only A declares resolves, on B, to A's server — with cluster scope only.
        p = B.cli_run("resolve", "tool", "only-on-a", "--scope", "cluster", "--compact")
        assert json.loads(p.stdout)["node"] == "A"
        assert B.cli_run("resolve", "tool", "only-on-a", check=False).returncode == 2
        # B declares forecast too, at the same health: B's own server wins on B.
        B.register_static(entry("weather-b", "http://10.9.9.9:8102/mcp", scope=None, tools=["forecast"]))
        p = B.cli_run("resolve", "tool", "forecast", "--scope", "cluster", "--compact")
        assert json.loads(p.stdout)["id"] == "weather-b" and "node" not in json.loads(p.stdout)
        # A healthier remote server wins over a local one.
        A.cli_run("health", "weather-a", "HEALTHY")
        def resolved_to_a():
            p = B.cli_run("resolve", "tool", "forecast", "--scope", "cluster", "--compact")
            return json.loads(p.stdout).get("node") == "A"
        wait_until(resolved_to_a, 10, "forecast resolving to HEALTHY A")
        # Qualified names reach the remote server by its id.
        p = B.cli_run("resolve", "tool", "weather-a.forecast", "--scope", "cluster", "--compact")
        assert json.loads(p.stdout)["node"] == "A"
        A.unregister("weather-a")
        removed = None
        while removed is None:
            ev = json.loads(watch.stdout.readline())
            if ev["removed"]:
                removed = ev["removed"]
        assert [(e["id"], e["node"]) for e in removed] == [("weather-a", "A")]
        B.unregister("weather-b")
    finally:
        watch.kill()
        watch.wait()


def test_owner_death_is_withdrawn(world):
    _, m = world
    A, B = m["A"], m["B"]
    holder = A.hold([entry("leased1", "http://10.1.2.3:8201/mcp")])
    wait_until(lambda: "A/leased1" in B.remote_keys(), 10, "A/leased1 on B")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    wait_until(lambda: "A/leased1" not in B.remote_keys(), 10, "A/leased1 gone from B after its owner died")


def test_sigkill_of_an_agent_expires_its_entries(world):
    etcd, m = world
    A, B, C = m["A"], m["B"], m["C"]
    A.register_static(entry("survivor", "http://10.1.2.3:8301/mcp"))
    B.register_static(entry("b-side", "http://10.1.2.4:8302/mcp"))
    wait_until(lambda: "A/survivor" in B.remote_keys() and "B/b-side" in A.remote_keys(), 10, "both sides published")
    killed_at = time.monotonic()
    A.kill_agent()
    # A's own view: the agent is gone, so B's entries are shown stale (last known), not dropped.
    wait_until(lambda: all(e.get("stale") for e in A.remote()) and A.remote(), 5, "A's view marked stale")
    # Elsewhere A's entries vanish when its lease expires: within the TTL (+ watch delay).
    wait_until(lambda: "A/survivor" not in B.remote_keys() and "A/survivor" not in C.remote_keys(), TTL + 5, "A's entries expired")
    elapsed = time.monotonic() - killed_at
    assert elapsed < TTL + 5
    assert "/peer-registry/v1/A/survivor" not in etcd.keys()
    # Back up: A republishes from its local file (authoritative), its view is fresh again.
    A.start_agent()
    wait_until(lambda: "A/survivor" in B.remote_keys(), 10, "A/survivor republished")
    wait_until(lambda: A.remote() and not any(e.get("stale") for e in A.remote()), 10, "A's view fresh")
    A.unregister("survivor")
    B.unregister("b-side")
    wait_until(lambda: not B.remote_keys() and not A.remote_keys(), 10, "views empty")


def test_sigkill_of_one_etcd_member_changes_nothing(world):
    etcd, m = world
    A, B = m["A"], m["B"]
    A.register_static(entry("steady", "http://10.1.2.3:8401/mcp"))
    wait_until(lambda: "A/steady" in B.remote_keys(), 10, "A/steady on B")
    # Every agent talks to the first endpoint: kill that member, the one they use.
    etcd.kill("m1")
    try:
        deadline = time.monotonic() + 2 * TTL + 2
        while time.monotonic() < deadline:
            remote = by_key(B.remote())
            assert "A/steady" in remote, "an entry vanished when one member of three was lost"
            time.sleep(0.1)
        # New registrations still propagate.
        A.register_static(entry("after-loss", "http://10.1.2.3:8402/mcp"))
        wait_until(lambda: "A/after-loss" in B.remote_keys(), 10, "A/after-loss on B with a member down")
        wait_until(lambda: not any(e.get("stale") for e in B.remote()), 10, "B's view fresh")
    finally:
        etcd.start("m1")
        etcd.wait_healthy()
    A.unregister("steady")
    A.unregister("after-loss")
    wait_until(lambda: not B.remote_keys(), 10, "B's view empty")


def test_etcd_fully_down_then_back(world):
    etcd, m = world
    A, B, C = m["A"], m["B"], m["C"]
    A.register_static(entry("kept", "http://10.1.2.3:8501/mcp"))
    A.register_static(entry("goes-while-down", "http://10.1.2.3:8502/mcp"))
    wait_until(lambda: {"A/kept", "A/goes-while-down"} <= B.remote_keys(), 10, "A's entries on B")
    etcd.kill_all()
    try:
        # B keeps the last view, marked stale.
        def stale():
            r = B.remote()
            return len(r) == 2 and all(e.get("stale") for e in r)
        wait_until(stale, 30, "B's view marked stale")
        assert B.view_state() == "unreachable"
        # Changes on A while etcd is away.
        A.unregister("goes-while-down")
        A.register_static(entry("added-while-down", "http://10.1.2.3:8503/mcp"))
        time.sleep(1)
        assert {"A/kept", "A/goes-while-down"} == B.remote_keys()  # nothing could tell B yet
    finally:
        etcd.start_all()
    # Back: A republishes, B resyncs by revision — the removed one gone, the new one there,
    # nothing duplicated, nothing stale.
    def converged():
        r = B.remote()
        keys = [f"{e['node']}/{e['id']}" for e in r]
        return sorted(keys) == ["A/added-while-down", "A/kept"] and not any(e.get("stale") for e in r)
    wait_until(converged, 60, "B resynced after the outage")
    assert B.view_state() == "connected"
    wait_until(lambda: C.remote_keys() == {"A/added-while-down", "A/kept"}, 30, "C resynced")
    for id in ("kept", "added-while-down"):
        A.unregister(id)
    wait_until(lambda: not B.remote_keys(), 10, "B's view empty")


def test_thousand_entries_over_three_nodes_converge(world):
    etcd, m = world
    per = {"A": 334, "B": 333, "C": 333}
    holders = {}
    for name, n in per.items():
        holders[name] = m[name].hold([entry(f"{name.lower()}-{i}", f"http://10.{ord(name)}.0.{i % 250 + 1}:{9000 + i}/mcp",
                                            tools=[f"tool-{name}-{i}", "common"]) for i in range(n)])
    expected = {f"{name}/{name.lower()}-{i}" for name, n in per.items() for i in range(n)}
    assert len(expected) == 1000
    for name in per:
        others = {k for k in expected if not k.startswith(name + "/")}
        wait_until(lambda: m[name].remote_keys() == others, 90, f"{name} sees the other nodes' entries", 0.5)
        listing = m[name].list()
        keys = [f"{e.get('node', name)}/{e['id']}" for e in listing]
        assert len(keys) == len(set(keys)) == 1000, "duplicates or missing entries"
    assert len([k for k in etcd.keys()]) == 1000
    # The owner of C's 333 entries dies: they leave every node.
    holders["C"].send_signal(signal.SIGKILL)
    holders["C"].wait()
    wait_until(lambda: not any(k.startswith("C/") for k in m["A"].remote_keys()), 30, "C's entries gone from A", 0.5)
    wait_until(lambda: not any(k.startswith("C/") for k in m["B"].remote_keys()), 30, "C's entries gone from B", 0.5)
    for name in ("A", "B"):
        holders[name].send_signal(signal.SIGKILL)
        holders[name].wait()
    wait_until(lambda: etcd.keys() == [], 30, "etcd empty", 0.5)


def test_second_agent_for_one_registry_is_refused(world):
    _, m = world
    A = m["A"]
    p = subprocess.run([CLI, "agent", "--registry", A.registry, "--etcd", ",".join(A.etcd.endpoints), "--node", "A2"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 3, p.stderr
    assert "another cluster agent" in p.stderr


def test_bad_agent_options_are_usage_errors(world):
    _, m = world
    A = m["A"]
    for args in (["--etcd", "127.0.0.1:2379"], ["--etcd", "http://127.0.0.1:1", "--node", "a/b"],
                 ["--etcd", "http://127.0.0.1:1", "--lease-ttl", "1"], ["--etcd", "http://127.0.0.1:1", "--advertise", "http://x"]):
        p = subprocess.run([CLI, "agent", "--registry", A.registry, *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 64, (args, p.stderr)


def test_agent_survives_garbage_in_etcd_and_a_corrupt_view(world):
    etcd, m = world
    A, B = m["A"], m["B"]
    import base64
    def put(key, value):
        etcd.request(etcd.endpoints[1], "/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                                                        "value": base64.b64encode(value).decode()})
    put("/peer-registry/v1/Z/junk", b"{not json")
    put("/peer-registry/v1/Z/wrong-id", json.dumps(entry("other", "http://10.0.0.9:1/mcp")).encode())
    put("/peer-registry/v1/not a node/x", b"{}")
    put("/peer-registry/v1/Z/bin", b"\xff\xfe")
    put("/peer-registry/v1/Z/good", json.dumps(dict(entry("good", "http://10.0.0.9:2/mcp"), liveness="none")).encode())
    wait_until(lambda: "Z/good" in B.remote_keys(), 10, "the valid key from Z on B")
    assert B.remote_keys() == {"Z/good"}
    assert B.agent.poll() is None
    # A corrupt view (written by hand) is reported to cluster readers, never fatal to local ones,
    # and the agent's next write replaces it.
    with open(A.view, "w") as f:
        f.write("{ corrupt")
    p = A.cli_run("list", "--json", "--scope", "cluster", check=False)
    assert p.returncode == 4 and "cluster view" in p.stderr
    assert A.cli_run("list", "--json").returncode == 0
    for key in ("Z/junk", "Z/wrong-id", "not a node/x", "Z/bin", "Z/good"):
        etcd.request(etcd.endpoints[1], "/v3/kv/deleterange", {"key": base64.b64encode(f"/peer-registry/v1/{key}".encode()).decode()})
    wait_until(lambda: A.cli_run("list", "--json", "--scope", "cluster", check=False).returncode == 0, 10, "A's view rewritten")
    assert A.agent.poll() is None and B.agent.poll() is None


def test_graceful_stop_withdraws_at_once(world):
    _, m = world
    A, B = m["A"], m["B"]
    A.register_static(entry("bye", "http://10.1.2.3:8601/mcp"))
    wait_until(lambda: "A/bye" in B.remote_keys(), 10, "A/bye on B")
    A.stop_agent()
    # Revoked, not expired: gone well before the TTL would have run out.
    wait_until(lambda: "A/bye" not in B.remote_keys(), TTL - 1, "A/bye withdrawn by the revoked lease")
    A.start_agent()
    A.unregister("bye")


def test_serve_answers_with_cluster_scope(world):
    import urllib.request
    _, m = world
    A, B = m["A"], m["B"]
    A.register_static(entry("served", "http://10.1.2.3:8701/mcp", tools=["served-tool"]))
    wait_until(lambda: "A/served" in B.remote_keys(), 10, "A/served on B")
    try:
        with B.serving() as (base, token):
            def get(path):
                req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        return r.status, json.loads(r.read())
                except urllib.error.HTTPError as e:
                    return e.code, json.loads(e.read())
            status, local = get("/servers")
            assert status == 200 and local["servers"] == []
            status, cluster = get("/servers?scope=cluster")
            assert status == 200 and [(e["id"], e["node"]) for e in cluster["servers"]] == [("served", "A")]
            assert get("/resolve?tool=served-tool")[0] == 404
            status, resolved = get("/resolve?tool=served-tool&scope=cluster")
            assert status == 200 and resolved["node"] == "A"
            assert get("/servers?scope=galaxy")[0] == 400
    finally:
        A.unregister("served")


def _sse_events(response, want: int, timeout: float):
    """The next `want` events (name, data) of an SSE response, skipping comments; the
    response's socket timeout bounds each read."""
    events, name, data = [], None, []
    deadline = time.monotonic() + timeout
    while len(events) < want:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(events)} SSE events within {timeout} s: {events}")
        line = response.readline().decode()
        if line == "":
            raise AssertionError(f"the SSE stream ended after {events}")
        if line in ("\n", "\r\n"):
            if name is not None and data:
                events.append((name, json.loads("".join(data))))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


def test_serve_events_follow_the_cluster_with_scope(world):
    """`/events?scope=cluster`: the state names the other nodes' entries (with node), a
    registration on another node arrives as a change; `/events` alone stays local."""
    import urllib.request
    _, m = world
    A, B = m["A"], m["B"]
    A.register_static(entry("streamed", "http://10.1.2.3:8711/mcp", tools=["t1"]))
    wait_until(lambda: "A/streamed" in B.remote_keys(), 10, "A/streamed on B")
    try:
        with B.serving() as (base, token):
            headers = {"Authorization": f"Bearer {token}"}
            with urllib.request.urlopen(urllib.request.Request(base + "/events?scope=cluster", headers=headers), timeout=20) as r:
                [(name, state)] = _sse_events(r, 1, 10)
                assert name == "state"
                assert ("A", "streamed") in [(e.get("node"), e["id"]) for e in state["servers"]]
                # The same id on two nodes is two entries: register "streamed" on B too.
                B.register_static(entry("streamed", "http://10.9.9.9:8712/mcp", scope=None))
                A.register_static(entry("streamed-2", "http://10.1.2.3:8713/mcp"))
                got = []
                while not any(e.get("node") == "A" and e["id"] == "streamed-2" for _, ev in got for e in ev["added"]):
                    got += _sse_events(r, 1, 10)
                added = [(e.get("node"), e["id"]) for _, ev in got for e in ev["added"]]
                assert (None, "streamed") in added and ("A", "streamed-2") in added
                assert all(name == "change" for name, _ in got)
            with urllib.request.urlopen(urllib.request.Request(base + "/events", headers=headers), timeout=20) as r:
                [(name, state)] = _sse_events(r, 1, 10)
                assert [(e.get("node"), e["id"]) for e in state["servers"]] == [(None, "streamed")]
            try:
                urllib.request.urlopen(urllib.request.Request(base + "/events?scope=galaxy", headers=headers), timeout=10)
                raise AssertionError("scope=galaxy accepted")
            except urllib.error.HTTPError as e:
                assert e.code == 400 and "scope" in json.loads(e.read())["error"]
    finally:
        B.unregister("streamed")
        A.unregister("streamed")
        A.unregister("streamed-2")


def test_mcp_tools_take_a_scope(world):
    """`peer-registry mcp` on B: instances/list and servers/resolve with scope "cluster" see A's
    server (with its node); without it they do not; a bad scope is a tool error."""
    _, m = world
    A, B = m["A"], m["B"]
    A.register_static(entry("mcp-far", "http://10.1.2.3:8721/mcp", tools=["far-tool"]))
    wait_until(lambda: "A/mcp-far" in B.remote_keys(), 10, "A/mcp-far on B")
    p = subprocess.Popen([CLI, "mcp", "--registry", B.registry], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    try:
        def rpc(i, method, params=None):
            p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params or {}}) + "\n")
            p.stdin.flush()
            while True:
                message = json.loads(p.stdout.readline())
                if message.get("id") == i:
                    return message
        rpc(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                              "clientInfo": {"name": "cluster-test", "version": "1"}})
        p.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
        p.stdin.flush()
        def call(i, name, arguments):
            return rpc(i, "tools/call", {"name": name, "arguments": arguments})["result"]
        listed = call(2, "instances/list", {"scope": "cluster"})
        assert not listed.get("isError"), listed
        assert ("A", "mcp-far") in [(e.get("node"), e["id"]) for e in listed["structuredContent"]["servers"]]
        local = call(3, "instances/list", {})
        assert "mcp-far" not in [e["id"] for e in local["structuredContent"]["servers"]]
        resolved = call(4, "servers/resolve", {"kind": "tool", "name": "far-tool", "scope": "cluster"})
        assert not resolved.get("isError"), resolved
        assert resolved["structuredContent"]["server"]["node"] == "A"
        assert call(5, "servers/resolve", {"kind": "tool", "name": "far-tool"})["isError"] is True
        bad = call(6, "instances/list", {"scope": "galaxy"})
        assert bad["isError"] is True and "scope" in bad["content"][0]["text"]
    finally:
        p.stdin.close()
        p.wait(timeout=20)
        A.unregister("mcp-far")


def test_gateway_on_one_node_calls_a_tool_on_another(world):
    """A real MCP server (the official SDK's MCPServer) on machine A, listening on A's address;
    the gateway on B with --scope cluster shows it as A__far__<tool>, routes calls to it by
    that name, by A/far.<tool> and by the bare name; when the server dies its tools go and the
    client hears list_changed. Without --scope cluster the gateway does not show it."""
    import asyncio
    backend_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gateway", "servers", "backend.py")
    _, m = world
    A, B = m["A"], m["B"]
    backend = subprocess.Popen([sys.executable, backend_script, "--registry", A.registry, "--id", "far",
                                "--bind", "127.0.0.2", "--scope", "cluster", "--tools", "forecast"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        backend.stdout.readline()
        wait_until(lambda: "A/far" in B.remote_keys(), 15, "A/far on B")
        [far] = [e for e in B.remote() if e["id"] == "far"]
        assert far["url"].startswith("http://127.0.0.2:")

        async def scenario():
            from mcp import ClientSession
            from mcp.client.stdio import StdioServerParameters, stdio_client
            changed = asyncio.Event()

            async def on_message(message):
                if getattr(getattr(message, "root", message), "method", None) == "notifications/tools/list_changed":
                    changed.set()

            log = open(os.path.join(B.dir, "gateway.log"), "a")
            local = StdioServerParameters(command=CLI, args=["gateway", "--registry", B.registry])
            async with stdio_client(local, errlog=log) as (r, w), ClientSession(r, w) as s:
                await s.initialize()
                assert not [t.name for t in (await s.list_tools()).tools if "far" in t.name]
            cluster = StdioServerParameters(command=CLI, args=["gateway", "--registry", B.registry, "--scope", "cluster"])
            async with stdio_client(cluster, errlog=log) as (r, w), ClientSession(r, w, message_handler=on_message) as s:
                await s.initialize()
                names = [t.name for t in (await s.list_tools()).tools]
                assert "A__far__forecast" in names and "A__far__echo" in names, names
                for name in ("A__far__forecast", "A/far.forecast", "forecast"):
                    result = await s.call_tool(name, {})
                    assert not result.is_error and result.content[0].text == "far:forecast", (name, result)
                result = await s.call_tool("A__far__echo", {"text": "across"})
                assert result.content[0].text == "far:across"
                # The gateway's own list is the cluster's.
                own = await s.call_tool("instances_list", {})
                assert ("A", "far") in [(e.get("node"), e["id"]) for e in own.structured_content["servers"]]
                changed.clear()
                backend.send_signal(signal.SIGKILL)
                backend.wait()
                await asyncio.wait_for(changed.wait(), 15)
                names = [t.name for t in (await s.list_tools()).tools]
                assert not [n for n in names if n.startswith("A__far__")], names
                # A call to it fails at once with a JSON-RPC error naming the server.
                from mcp.shared.exceptions import MCPError
                try:
                    await s.call_tool("A__far__forecast", {})
                    raise AssertionError("a call to a dead remote server succeeded")
                except MCPError as e:
                    assert "A/far" in str(e), e

        asyncio.run(scenario())
    finally:
        if backend.poll() is None:
            backend.kill()
            backend.wait()
    wait_until(lambda: "A/far" not in B.remote_keys(), 15, "A/far withdrawn")
