#!/usr/bin/env python3
"""Builds the platform wheel of the Python binding with libpeerregistry inside it.

    python3 bindings/python/build_wheel.py build/lib/libpeerregistry.so.0.2.0 build/dist

writes ``build/dist/peer_registry-<version>-py3-none-linux_<arch>.whl``: the package from
``src/peer_registry`` plus the library as ``peer_registry/libpeerregistry.so.0``, which the
package loads when ``$PEER_REGISTRY_LIB`` is not set (docs/ABI.md, "Finding the library").

The wheel is written directly (a wheel is a zip with a ``.dist-info`` directory, PEP 427), so
building it needs neither network nor ``setuptools``/``wheel``; it is byte-for-byte reproducible
(file times from ``$SOURCE_DATE_EPOCH``, else 1980-01-01). The tag is ``py3-none``: the package
is pure Python around a C library it loads with ctypes, so it fits every CPython 3.9+ on this
platform, and ``linux_<arch>`` because the library is built for this machine's architecture.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import re
import sys
import time
import zipfile
from pathlib import Path
from typing import List, Tuple

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "src" / "peer_registry"
LIB_NAME_IN_PACKAGE = "libpeerregistry.so.0"


def project_field(name: str) -> str:
    text = (HERE / "pyproject.toml").read_text()
    match = re.search(rf'^{name}\s*=\s*"([^"]*)"', text, re.M)
    if not match:
        raise SystemExit(f"build_wheel.py: no {name} in pyproject.toml")
    return match.group(1)


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    library, out_dir = Path(argv[1]), Path(argv[2])
    if not library.is_file():
        print(f"build_wheel.py: {library} not found; build it first (make lib)", file=sys.stderr)
        return 1

    version = project_field("version")
    init = (PACKAGE / "__init__.py").read_text()
    if f'__version__ = "{version}"' not in init:
        print(f"build_wheel.py: peer_registry.__version__ differs from pyproject's {version}", file=sys.stderr)
        return 1
    arch = platform.machine()
    tag = f"py3-none-linux_{arch}"
    dist_info = f"peer_registry-{version}.dist-info"

    files: List[Tuple[str, bytes, int]] = []  # (name in the wheel, content, mode)
    for path in sorted(PACKAGE.iterdir()):
        if path.is_file() and (path.suffix == ".py" or path.name == "py.typed"):
            files.append((f"peer_registry/{path.name}", path.read_bytes(), 0o644))
    files.append((f"peer_registry/{LIB_NAME_IN_PACKAGE}", library.read_bytes(), 0o755))

    readme = (HERE / "README.md").read_text()
    metadata = "\n".join([
        "Metadata-Version: 2.1",
        "Name: peer-registry",
        f"Version: {version}",
        f"Summary: {project_field('description')}",
        f"Requires-Python: {project_field('requires-python')}",
        "Classifier: Programming Language :: Python :: 3",
        "Classifier: Operating System :: POSIX :: Linux",
        "Classifier: Typing :: Typed",
        "Provides-Extra: mcp",
        'Requires-Dist: mcp>=2.3; extra == "mcp"',
        "Description-Content-Type: text/markdown",
        "",
        readme,
    ])
    wheel = "\n".join([
        "Wheel-Version: 1.0",
        "Generator: peer-registry build_wheel.py",
        "Root-Is-Purelib: false",
        f"Tag: {tag}",
        "",
    ])
    files.append((f"{dist_info}/METADATA", metadata.encode(), 0o644))
    files.append((f"{dist_info}/WHEEL", wheel.encode(), 0o644))
    files.append((f"{dist_info}/top_level.txt", b"peer_registry\n", 0o644))
    record = "".join(f"{name},{record_hash(data)},{len(data)}\n" for name, data, _ in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode(), 0o644))

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    stamp = time.gmtime(max(epoch, 315532800))[:6]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"peer_registry-{version}-{tag}.whl"
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data, mode in files:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    partial.replace(target)
    print(f"{target} ({target.stat().st_size} bytes; library {library.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
