#!/usr/bin/env python3
"""What `import peer_registry` plus a first call costs, side by side with a bare interpreter.

    make dist-python && python3 bindings/python/bench_import.py [--runs 40] [--wheel WHL]

Installs the wheel (build/dist/, offline) into a fresh venv in a temp dir, then runs, alternating
so that both see the same machine load:

  bare    python -c pass
  import  python -c "import peer_registry"
  first   python -c "import peer_registry; peer_registry.Registry(PATH).list()"

and prints each one's median, p10 and p90 wall time and the medians' differences from ``bare``.
Then the modules the import adds (``-X importtime``, the largest first) and the cost of loading
the library alone (``ctypes.CDLL``). Nothing is asserted: this is a measurement. The same with
hyperfine (``apt-get install -y hyperfine``), from the venv it printed:

    hyperfine -N -w 5 'VENV/bin/python -c pass' 'VENV/bin/python -c "import peer_registry; ..."'
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def timed(argv: list, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--wheel", help="default: build/dist/peer_registry-*-linux_<arch>.whl")
    args = parser.parse_args()
    wheel = args.wheel or next(iter(sorted(glob.glob(str(ROOT / f"build/dist/peer_registry-*-linux_{platform.machine()}.whl")))), None)
    if not wheel:
        print("bench_import.py: no wheel: run `make dist-python` first", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="peerreg-bench-import.") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--no-index",
                        "--disable-pip-version-check", wheel], check=True)
        python = str(venv / "bin/python")
        env = {"HOME": tmp, "PATH": "/usr/bin:/bin", "PEER_REGISTRY_PATH": f"{tmp}/reg/servers.json"}
        subprocess.run([python, "-c", "import peer_registry; peer_registry.Registry().list()"], env=env, check=True)
        cases = {
            "bare": [python, "-c", "pass"],
            "import": [python, "-c", "import peer_registry"],
            "first": [python, "-c", "import peer_registry; peer_registry.Registry().list()"],
        }
        times: dict = {name: [] for name in cases}
        for _ in range(3):  # warm the page cache
            for argv in cases.values():
                timed(argv, env)
        for _ in range(args.runs):
            for name, argv in cases.items():
                times[name].append(timed(argv, env))

        print(f"{args.runs} runs each, alternating; {platform.python_implementation()} "
              f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} at the end")
        print(f"{'':8}{'median':>10}{'p10':>9}{'p90':>9}{'vs bare':>10}")
        bare = statistics.median(times["bare"])
        for name, values in times.items():
            values.sort()
            median = statistics.median(values)
            p10, p90 = values[len(values) // 10], values[(len(values) * 9) // 10]
            delta = "" if name == "bare" else f"+{median - bare:.2f}"
            print(f"{name:8}{median:9.2f}ms{p10:8.2f}ms{p90:8.2f}ms{delta:>10}")

        out = subprocess.run([python, "-X", "importtime", "-c", "import peer_registry"], env=env,
                             capture_output=True, text=True, check=True).stderr
        bare_modules = set(subprocess.run([python, "-c", "import sys; print(*sys.modules)"], env=env,
                                          capture_output=True, text=True, check=True).stdout.split())
        rows = []
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[0].strip().split(":")[-1].strip().isdigit():
                name = parts[2].strip()
                if name not in bare_modules:
                    rows.append((int(parts[0].split(":")[1]), name))
        rows.sort(reverse=True)
        print("\nmodules the import adds (self time, -X importtime, one run):")
        for us, name in rows:
            print(f"  {us / 1000:6.2f} ms  {name}")
        lib = f"{venv}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/peer_registry/libpeerregistry.so.0"
        load = [timed([python, "-c", f"import ctypes; ctypes.CDLL({lib!r})"], env) -
                timed([python, "-c", "import ctypes"], env) for _ in range(max(5, args.runs // 4))]
        print(f"\nloading the library alone (ctypes.CDLL of {os.path.getsize(lib)} bytes): "
              f"median {statistics.median(load):.2f} ms over `import ctypes`")
        print(f"\nvenv kept only for this run: {venv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
