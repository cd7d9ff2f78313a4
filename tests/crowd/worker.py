#!/usr/bin/env python3
"""Crowd worker (Python, through the peer_registry binding). The protocol every worker of the
crowd test follows is described in tests/crowd/driver.py; usage:

    worker.py <registry> <name> <iterations>
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import peer_registry

METADATA_TEXT = "h\u00e9llo \u2713 \"quoted\" \\ </tag>"


def emit(line: str) -> None:
    # One write(2) per line, straight to the pipe: what is printed is never lost to a SIGKILL.
    os.write(1, (line + "\n").encode("utf-8"))


def fail(message: str) -> None:
    os.write(2, f"worker {sys.argv[2]}: {message}\n".encode("utf-8"))
    sys.exit(1)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def entry_for(lang_index: int, lang: str, name: str, w: int, i: int) -> dict:
    id = f"{name}-{i}"
    return {
        "id": id,
        "name": f"crowd {name} #{i}",
        "url": f"http://127.0.0.1:{10000 + lang_index * 10000 + w * 1000 + i}/mcp",
        "capabilities": {
            "tools": [f"tool-{id}", f"shared-{lang}"],
            "resources": [f"resource://{id}/"],
            "prompts": [f"prompt-{name}"],
        },
        "metadata": {
            "lang": lang,
            "worker": name,
            "i": i,
            "text": METADATA_TEXT,
            "nested": {"list": [1, 2.5, -3, True, None], "empty": {}},
        },
    }


def main() -> None:
    path, name, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lang, w = name.rsplit("-", 1)
    lang_index = {"py": 0, "node": 1, "go": 2}[lang]
    pid = os.getpid()
    counts = {"register": 0, "unregister": 0, "health": 0, "list": 0, "resolve": 0}
    reg = peer_registry.Registry(path)
    emit("READY")
    check(sys.stdin.readline() == "GO\n", "expected GO")
    kept: list[str] = []
    gone: list[str] = []
    for i in range(iterations):
        e = entry_for(lang_index, lang, name, int(w), i)
        id = e["id"]
        stored = reg.register(e)
        counts["register"] += 1
        check(stored["id"] == id and stored["pid"] == pid and stored["url"] == e["url"],
              f"register {id} returned {stored}")
        emit(f"ACK {id}")
        listed = [s["id"] for s in reg.list(tool=f"tool-{id}")]
        counts["list"] += 1
        check(listed == [id], f"list(tool=tool-{id}) = {listed}")
        check(reg.resolve_tool(f"tool-{id}")["id"] == id, f"resolve tool-{id}")
        counts["resolve"] += 1
        reg.set_health(id, "HEALTHY" if i % 4 == 0 else "DEGRADED", f"{name} iteration {i}")
        counts["health"] += 1
        if i % 2 == 1:
            reg.unregister(id)
            counts["unregister"] += 1
            emit(f"UNREG {id}")
            gone.append(id)
        else:
            kept.append(id)
        if i % 25 == 24:
            ids = {s["id"] for s in reg.list()}
            counts["list"] += 1
            check(ids.issuperset(kept), f"own entries missing from list: {sorted(set(kept) - ids)}")
            check(not ids.intersection(gone), f"unregistered entries listed: {sorted(ids & set(gone))}")
    emit("DONE " + json.dumps(counts))

    for line in sys.stdin:
        words = line.split(" ", 3)
        command = words[0].strip()
        try:
            if command == "GET":
                id = words[1].strip()
                emit(f"GOT {id} " + json.dumps(reg.get(id), ensure_ascii=False))
            elif command == "LIST":
                emit("LISTED " + json.dumps(sorted(s["id"] for s in reg.list())))
            elif command == "HEALTH":
                reg.set_health(words[1], words[2], words[3].rstrip("\n"))
                emit("OK")
            else:
                fail(f"unknown command {line!r}")
        except peer_registry.RegistryError as e:
            emit(f"ERR {words[1].strip() if len(words) > 1 else '-'} {e.code} {e}")
    reg.close()


if __name__ == "__main__":
    try:
        main()
    except peer_registry.RegistryError as e:
        where = traceback.extract_tb(e.__traceback__)[1]  # the worker's line that made the call
        fail(f"{type(e).__name__} ({e.code}) from `{where.line}`: {e}")
