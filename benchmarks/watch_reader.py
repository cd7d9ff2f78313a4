#!/usr/bin/env python3
"""A watch_writer reader in Python: the binding's blocking watch iterator.

Usage: watch_reader.py <path>. Prints "ready", then "<seq> <CLOCK_MONOTONIC ns>" per event,
stamped as the event (already decoded by the binding) reaches this loop.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bindings" / "python" / "src"))
import peer_registry  # noqa: E402

reg = peer_registry.Registry(sys.argv[1])
with reg.watch() as watch:
    print("ready", flush=True)
    for event in watch:
        t = time.monotonic_ns()
        for entry in event["changed"] + event["added"]:
            if entry["id"] == "watched":
                print(entry["metadata"]["seq"], t, flush=True)
