#!/usr/bin/env python3
"""Figures for issue 13 (the servers hold up), measured on real processes and sockets:

1. RSS of `peer-registry serve` on a 7.8 MB registry, idle and with 150 clients that never read
   (75 on /servers, 75 on /events) while the registry is rewritten 10 times;
2. its descriptor count after 5,000 /events connect/read/close cycles;
3. SIGTERM-to-exit time with 20 stuck (non-reading) event-stream clients;
4. the time `peer-registry mcp` (stdio) takes to answer lines of 1, 4 and 10 MB (under a raised
   cap, to show the reading is linear), and to refuse a 10 MB line under the default 4 MiB cap.

    python3 scripts/server-figures.py [--bin .build/release/peer-registry]

Prints the figures; nothing is asserted (the tests in tests/cli/test_servers.py check the
behaviour).
"""
import argparse
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cli"))
from test_servers import INITIALIZE, big_registry, fd_count, rss_kb  # noqa: E402


def start_serve(binary, registry, *args):
    child = subprocess.Popen([binary, "serve", "--registry", registry, "--port", "0", *args],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = child.stdout.readline().strip()
    # A build from before the token (for a before/after comparison) prints no token.
    base, _, token = url.partition("?token=")
    return child, int(base.rsplit(":", 1)[1].rstrip("/")), token


def stop(child):
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    child.stdout.close()


def memory(binary, tmp):
    registry = os.path.join(tmp, "mem", "servers.json")
    size = big_registry(registry)
    child, port, token = start_serve(binary, registry, "--keep-alive", "3600")
    time.sleep(1)
    idle = rss_kb(child.pid)
    clients = []
    for i in range(150):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        path = "/events" if i % 2 else "/servers"
        s.sendall(f"GET {path}?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        clients.append(s)
    time.sleep(3)
    with_clients = rss_kb(child.pid)
    peak = with_clients
    for generation in range(2, 12):
        big_registry(registry, generation=generation)
        time.sleep(0.5)
        peak = max(peak, rss_kb(child.pid))
    time.sleep(2)
    after = rss_kb(child.pid)
    for s in clients:
        s.close()
    stop(child)
    print(f"1. memory, {size / 1e6:.1f} MB registry: idle {idle / 1024:.0f} MB; 150 non-reading clients "
          f"{with_clients / 1024:.0f} MB; after 10 rewrites {after / 1024:.0f} MB (peak {peak / 1024:.0f} MB)")


def descriptors(binary, tmp):
    registry = os.path.join(tmp, "fd", "servers.json")
    os.makedirs(os.path.dirname(registry), mode=0o700)
    child, port, token = start_serve(binary, registry, "--keep-alive", "3600")
    time.sleep(0.5)
    before = fd_count(child.pid)
    started = time.monotonic()
    failed = None
    for i in range(5000):
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(f"GET /events?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            if not c.recv(200):
                raise OSError("closed without an answer")
            c.close()
        except OSError as error:
            failed = f"; cycle {i + 1} failed: {error}"
            break
    elapsed = time.monotonic() - started
    time.sleep(0.5)
    after = fd_count(child.pid)
    limit = open(f"/proc/{child.pid}/limits").read().split("Max open files")[1].split()[0]
    stop(child)
    print(f"2. descriptors: {before} before, {after} after 5000 /events connect/read/close cycles "
          f"({elapsed:.1f} s; limit {limit}){failed or ''}")


def shutdown(binary, tmp):
    registry = os.path.join(tmp, "term", "servers.json")
    big_registry(registry, target_bytes=2_000_000)
    child, port, token = start_serve(binary, registry, "--keep-alive", "3600")
    stuck = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(f"GET /events?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        stuck.append(s)
    for generation in range(2, 6):
        big_registry(registry, target_bytes=2_000_000, generation=generation)
        time.sleep(0.3)
    started = time.monotonic()
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        print("3. SIGTERM to exit with 20 stuck event-stream clients: still running after 60 s (killed)")
        return
    elapsed = time.monotonic() - started
    child.stdout.close()
    for s in stuck:
        s.close()
    print(f"3. SIGTERM to exit with 20 stuck event-stream clients: {elapsed:.2f} s (deadline 3 s; exit {child.returncode})")


def mcp_line(binary, tmp, megabytes, cap=None):
    registry = os.path.join(tmp, f"mcp{megabytes}{cap}", "servers.json")
    args = [binary, "mcp", "--registry", registry] + (["--max-line-bytes", str(cap)] if cap else [])
    child = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    child.stdin.write((INITIALIZE + "\n").encode())
    child.stdin.flush()
    child.stdout.readline()
    line = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {"_meta": {"pad": "y" * (megabytes << 20)}}}) + "\n"
    data = line.encode()
    started = time.monotonic()
    cpu_before = cpu_seconds(child.pid)
    child.stdin.write(data)
    child.stdin.flush()
    ready, _, _ = select.select([child.stdout], [], [], 300)
    if not ready:
        child.kill()
        child.wait()
        return time.monotonic() - started, cpu_seconds_or(child.pid, cpu_before), "no answer within 300 s"
    answer = json.loads(child.stdout.readline())
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(child.pid) - cpu_before
    child.stdin.close()
    child.wait(timeout=30)
    child.stdout.close()
    what = "error " + str(answer["error"]["code"]) if "error" in answer else "answered"
    return elapsed, cpu, what


def cpu_seconds_or(pid, before):
    try:
        return cpu_seconds(pid) - before
    except OSError:
        return float("nan")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build", "debug", "peer-registry"))
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    tmp = tempfile.mkdtemp(prefix="prk-figures-")
    try:
        print(f"peer-registry: {binary}")
        memory(binary, tmp)
        descriptors(binary, tmp)
        shutdown(binary, tmp)
        raised = "--max-line-bytes" in subprocess.run([binary, "mcp", "--help"], capture_output=True, text=True).stdout
        for mb in (1, 4, 10):
            elapsed, cpu, what = mcp_line(binary, tmp, mb, cap=(32 << 20) if raised else None)
            print(f"4. mcp stdio, a {mb} MB line (cap raised to 32 MiB): {what} in {elapsed:.2f} s ({cpu:.2f} s CPU)")
        elapsed, cpu, what = mcp_line(binary, tmp, 10)
        print(f"4. mcp stdio, a 10 MB line under the default 4 MiB cap: {what} in {elapsed:.2f} s ({cpu:.2f} s CPU)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
