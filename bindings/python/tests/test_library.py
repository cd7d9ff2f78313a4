"""Loading the library: version agreement with the header, error codes, the lookup rule."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

import peer_registry
from peer_registry._lib import HEADER_VERSION_NUMBER
from peer_registry.errors import error_for_code

from _support import HEADER, PACKAGE_SRC, run_python

HEADER_TEXT = HEADER.read_text()


def header_codes() -> Dict[str, int]:
    body = re.search(r"enum peerreg_code \{\s*PEERREG_OK.*?\} peerreg_code;", HEADER_TEXT, re.S)
    assert body, "result-code enum not found in the header"
    return {name: int(value) for name, value in re.findall(r"(PEERREG_\w+)\s*=\s*(-?\d+)", body.group(0))}


def test_library_version_matches_the_header(lib: peer_registry.Library) -> None:
    number = int(re.search(r"#define PEERREG_VERSION_NUMBER (\d+)", HEADER_TEXT).group(1))  # type: ignore[union-attr]
    version = re.search(r'#define PEERREG_VERSION "([^"]+)"', HEADER_TEXT).group(1)  # type: ignore[union-attr]
    assert HEADER_VERSION_NUMBER == number, "the binding's header version is stale"
    assert lib.version_number == number
    assert lib.version == version


def test_every_header_code_has_its_own_exception_class(lib: peer_registry.Library) -> None:
    codes = header_codes()
    assert codes.pop("PEERREG_OK") == 0
    assert len(codes) == 10
    classes = set()
    for name, code in codes.items():
        error = error_for_code(code, "message")
        assert type(error) is not peer_registry.RegistryError, name
        assert isinstance(error, peer_registry.RegistryError)
        assert error.code == code and str(error) == "message"
        classes.add(type(error))
        # The library agrees on which code is which.
        assert lib.errstr(code).startswith(name), (code, lib.errstr(code))
    assert len(classes) == len(codes)
    assert type(error_for_code(-99, "m")) is peer_registry.RegistryError
    assert lib.errstr(-99) == "PEERREG_UNKNOWN_CODE"


def test_builtin_exception_bases() -> None:
    assert issubclass(peer_registry.NotFoundError, LookupError)
    assert issubclass(peer_registry.PermissionDeniedError, PermissionError)
    assert issubclass(peer_registry.InvalidArgumentError, ValueError)
    error = error_for_code(-6, "chmod 700 it")
    assert isinstance(error, OSError) and error.strerror == "chmod 700 it" and str(error) == "chmod 700 it"


def test_importing_does_not_load_the_library() -> None:
    # Loading is deferred so that load_library(path) can still choose the file.
    code = "import peer_registry; print(any('libpeerregistry' in l for l in open('/proc/self/maps')))"
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---- lookup rule: $PEER_REGISTRY_LIB, the copy shipped in the package, the system's .so.0 -----
# (docs/ABI.md, "Finding the library"; an explicit path argument bypasses the rule)

PROBE = """
import json, sys, peer_registry
try:
    with peer_registry.Registry(lib=sys.argv[1] if len(sys.argv) > 1 else None) as reg:
        print(json.dumps({"source": reg.lib.source, "path": reg.lib.path}))
except peer_registry.LibraryNotFoundError as e:
    print(json.dumps({"error": str(e)}))
"""


def probe(*, src: Path, lib_env: Optional[str] = None, ld_path: Optional[Path] = None,
          explicit: Optional[str] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PEER_REGISTRY_LIB", "LD_LIBRARY_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(src)
    if lib_env is not None:
        env["PEER_REGISTRY_LIB"] = lib_env
    if ld_path is not None:
        env["LD_LIBRARY_PATH"] = str(ld_path)
    args = [] if explicit is None else [explicit]
    result = run_python(PROBE, *args, env=env)
    assert result.returncode == 0, result.stderr
    answer: Dict[str, str] = json.loads(result.stdout)
    return answer


@pytest.fixture
def lib_link(tmp_path: Path, lib: peer_registry.Library) -> Path:
    link = tmp_path / "linked" / "libpeerregistry.so"
    link.parent.mkdir()
    link.symlink_to(os.path.realpath(lib.path))
    return link


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the package without a shipped library (as from a source checkout)."""
    src = tmp_path / "plain" / "src"
    shutil.copytree(PACKAGE_SRC / "peer_registry", src / "peer_registry",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so*"))
    return src


@pytest.fixture
def package_with_library(tmp_path: Path, lib: peer_registry.Library) -> Path:
    """A copy of the package carrying the library, laid out as the platform wheel installs it."""
    src = tmp_path / "wheel" / "site-packages"
    shutil.copytree(PACKAGE_SRC / "peer_registry", src / "peer_registry",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so*"))
    shutil.copyfile(os.path.realpath(lib.path), src / "peer_registry" / "libpeerregistry.so.0")
    return src


def test_explicit_path_wins_over_the_environment(lib_link: Path, tmp_path: Path, package_copy: Path) -> None:
    got = probe(src=package_copy, lib_env=str(tmp_path / "missing.so"), explicit=str(lib_link))
    assert got == {"source": "argument", "path": str(lib_link)}


def test_environment_wins_over_the_shipped_copy(lib_link: Path, package_with_library: Path) -> None:
    assert probe(src=package_with_library, lib_env=str(lib_link)) == {"source": "PEER_REGISTRY_LIB", "path": str(lib_link)}
    # An empty variable counts as not set.
    shipped = str(package_with_library / "peer_registry" / "libpeerregistry.so.0")
    assert probe(src=package_with_library, lib_env="") == {"source": "package", "path": shipped}


def test_the_shipped_copy_wins_over_the_system(package_with_library: Path, lib: peer_registry.Library, tmp_path: Path) -> None:
    system_dir = tmp_path / "system"
    system_dir.mkdir()
    (system_dir / "libpeerregistry.so.0").symlink_to(os.path.realpath(lib.path))
    shipped = str(package_with_library / "peer_registry" / "libpeerregistry.so.0")
    assert probe(src=package_with_library, ld_path=system_dir) == {"source": "package", "path": shipped}


def test_the_system_library_is_the_last_resort(package_copy: Path, lib: peer_registry.Library, tmp_path: Path) -> None:
    system_dir = tmp_path / "system"
    system_dir.mkdir()
    (system_dir / "libpeerregistry.so.0").symlink_to(os.path.realpath(lib.path))
    got = probe(src=package_copy, ld_path=system_dir)
    assert got == {"source": "system", "path": "libpeerregistry.so.0"}


def test_no_repository_path_is_guessed() -> None:
    # This very checkout has build/lib/libpeerregistry.so; without $PEER_REGISTRY_LIB the package
    # from its src/ must not pick it up (installed code never guesses repository paths).
    message = probe(src=PACKAGE_SRC)["error"]
    assert "build/lib" not in message
    assert "libpeerregistry.so.0" in message


def test_not_found_names_every_place_tried(package_copy: Path) -> None:
    message = probe(src=package_copy)["error"]
    assert "$PEER_REGISTRY_LIB: not set" in message
    assert f"the copy shipped in the package: {package_copy / 'peer_registry' / 'libpeerregistry.so.0'} does not exist" in message
    assert "the system's libpeerregistry.so.0: libpeerregistry.so.0" in message
    assert message.index("PEER_REGISTRY_LIB") < message.index("shipped") < message.index("system's")


def test_a_given_path_that_does_not_load_is_an_error_not_a_fallback(tmp_path: Path, package_with_library: Path) -> None:
    # The shipped copy exists, yet a wrong $PEER_REGISTRY_LIB must not be silently replaced by it.
    missing = str(tmp_path / "nope" / "libpeerregistry.so")
    message = probe(src=package_with_library, lib_env=missing)["error"]
    assert f"$PEER_REGISTRY_LIB: {missing}" in message
    assert "shipped" not in message

    message = probe(src=package_with_library, explicit=missing)["error"]
    assert f"explicit path argument: {missing}" in message


def test_a_shipped_copy_that_does_not_load_is_an_error_not_a_fallback(package_copy: Path, lib: peer_registry.Library, tmp_path: Path) -> None:
    (package_copy / "peer_registry" / "libpeerregistry.so.0").write_text("not an ELF file")
    system_dir = tmp_path / "system"
    system_dir.mkdir()
    (system_dir / "libpeerregistry.so.0").symlink_to(os.path.realpath(lib.path))
    message = probe(src=package_copy, ld_path=system_dir)["error"]
    assert "the copy shipped in the package" in message and "system's" not in message


def test_a_file_that_is_not_the_library_is_refused(tmp_path: Path) -> None:
    not_a_library = tmp_path / "libpeerregistry.so"
    not_a_library.write_text("not an ELF file")
    message = probe(src=PACKAGE_SRC, explicit=str(not_a_library))["error"]
    assert str(not_a_library) in message


def test_one_library_per_process(lib_link: Path, tmp_path: Path, lib: peer_registry.Library) -> None:
    # The same file under another name is the library already loaded...
    assert peer_registry.load_library(lib_link) is lib
    with peer_registry.Registry(tmp_path / "servers.json", lib=lib_link) as reg:
        assert reg.lib is lib
    # ...a different file is refused rather than loaded beside it.
    copy = tmp_path / "copy" / "libpeerregistry.so"
    copy.parent.mkdir()
    shutil.copyfile(os.path.realpath(lib.path), copy)
    with pytest.raises(peer_registry.LibraryNotFoundError) as excinfo:
        peer_registry.Registry(tmp_path / "servers.json", lib=copy)
    assert str(copy) in str(excinfo.value) and lib.path in str(excinfo.value)


def test_importing_stays_light(tmp_path: Path) -> None:
    # What `import peer_registry` adds to a bare interpreter: no typing, enum, json (which
    # imports re), threading, contextlib or asyncio — the costs bench_import.py found dominant.
    code = ("import sys; before = set(sys.modules); import peer_registry; "
            "r = peer_registry.Registry(sys.argv[1]); r.list(); r.close(); "
            "print(*sorted(set(sys.modules) - before))")
    result = run_python(code, str(tmp_path / "servers.json"))
    assert result.returncode == 0, result.stderr
    added = set(result.stdout.split())
    heavy = {"typing", "enum", "json", "re", "threading", "contextlib", "asyncio", "collections", "functools"}
    assert not added & heavy, sorted(added & heavy)
    assert "peer_registry.types" not in added  # loaded on first use of a typing aid only
    # ...and the typing aids still work when asked for.
    result = run_python("import peer_registry; print(peer_registry.Health.DOWN.name, peer_registry.Listing(1, []).generation)")
    assert result.stdout.split() == ["DOWN", "1"], result.stderr
