"""Each exception class, reached through what the library really does."""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import pickle
import select
import signal
import time
import warnings
from pathlib import Path

import pytest

import peer_registry
from peer_registry import LibraryNotFoundError, Registry
from peer_registry.errors import error_for_code

from _support import reap, spawn_python

URL = "http://127.0.0.1:8080/mcp"


def check(excinfo: pytest.ExceptionInfo, code: int) -> str:
    error = excinfo.value
    assert isinstance(error, peer_registry.RegistryError)
    assert error.code == code
    assert str(error) == error.message and error.message
    return error.message


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "bad/id", "url": URL},        # ids name lease files: no slashes
        {"id": "has.dot", "url": URL},       # ... and split qualified names: no dots
        {"id": "", "url": URL},
        {"id": "x" * 65, "url": URL},
        {"url": URL},                        # id is required
        {"id": "nourl"},                     # url is required
        {"id": "t", "url": URL, "transport": "carrier-pigeon"},
        {"id": "l", "url": URL, "liveness": "forever"},
    ],
)
def test_invalid_entries(reg: Registry, bad: dict) -> None:
    with pytest.raises(peer_registry.InvalidArgumentError) as excinfo:
        reg.register(bad)
    check(excinfo, -1)
    assert isinstance(excinfo.value, ValueError)
    assert reg.list() == []


def test_invalid_health_value_is_rejected_by_the_library(reg: Registry) -> None:
    reg.register({"id": "h", "url": URL})
    with pytest.raises(peer_registry.InvalidArgumentError) as excinfo:
        reg.set_health("h", 7)
    check(excinfo, -1)
    with pytest.raises(peer_registry.InvalidArgumentError):
        reg.set_health("h", "SICK")
    assert reg.get("h")["health"]["status"] == "UNKNOWN"


def test_nul_in_a_name_is_refused_not_truncated(reg: Registry) -> None:
    reg.register({"id": "a", "url": URL})
    with pytest.raises(peer_registry.InvalidArgumentError):
        reg.get("a\0suffix")       # ctypes alone would look up "a"
    with pytest.raises(peer_registry.InvalidArgumentError):
        reg.unregister("a\0")
    assert reg.get("a")["id"] == "a"


def test_not_found(reg: Registry) -> None:
    with pytest.raises(peer_registry.NotFoundError) as excinfo:
        reg.get("nobody")
    check(excinfo, -2)
    with pytest.raises(LookupError):
        reg.resolve_prompt("nothing")


def test_already_exists_when_another_handle_holds_the_id(reg: Registry, other: Registry) -> None:
    reg.register({"id": "taken", "url": URL, "name": "first"})
    with pytest.raises(peer_registry.AlreadyExistsError) as excinfo:
        other.register({"id": "taken", "url": URL, "name": "second"})
    check(excinfo, -3)
    assert other.get("taken")["name"] == "first"


def test_corrupt_file_is_reported_and_kept(reg: Registry, registry_path: Path) -> None:
    reg.register({"id": "a", "url": URL, "liveness": "none"})
    garbage = '{"version": 1, "servers": [ {"id": '
    registry_path.write_text(garbage)
    with pytest.raises(peer_registry.CorruptRegistryError) as excinfo:
        reg.list()
    message = check(excinfo, -4)
    assert str(registry_path) in message
    with pytest.raises(peer_registry.CorruptRegistryError):
        reg.register({"id": "b", "url": URL})
    assert registry_path.read_text() == garbage  # refused to write over it


def test_io_error_when_the_directory_cannot_be_created(tmp_path: Path, lib: peer_registry.Library) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(peer_registry.RegistryIOError) as excinfo:
        Registry(blocker / "sub" / "servers.json")
    check(excinfo, -5)


def test_permission_denied_for_a_world_writable_directory(tmp_path: Path, lib: peer_registry.Library) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(peer_registry.PermissionDeniedError) as excinfo:
        Registry(shared / "servers.json")
    message = check(excinfo, -6)
    assert str(shared) in message and "chmod" in message  # it says how to fix it
    assert isinstance(excinfo.value, PermissionError)
    shared.chmod(0o700)
    Registry(shared / "servers.json").close()  # the fix the message asks for works


def test_permission_denied_for_a_symlinked_or_hard_linked_file(tmp_path: Path, registry_path: Path, lib: peer_registry.Library) -> None:
    with Registry(registry_path) as reg:
        reg.register({"id": "a", "url": URL, "liveness": "none"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    link = elsewhere / "servers.json"
    link.symlink_to(registry_path)
    with pytest.raises(peer_registry.PermissionDeniedError):
        with Registry(link) as reg:
            reg.list()
    link.unlink()
    os.link(registry_path, link)
    with pytest.raises(peer_registry.PermissionDeniedError):
        with Registry(link) as reg:
            reg.list()


HOLD_LOCK = """
import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_lock_timeout_while_another_process_holds_the_lock(reg: Registry, registry_path: Path) -> None:
    holder = spawn_python(HOLD_LOCK, str(registry_path) + ".lock")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(peer_registry.LockTimeoutError) as excinfo:
            reg.register({"id": "blocked", "url": URL})
        check(excinfo, -7)
        assert time.monotonic() - started > 0.05  # it waited before giving up
    finally:
        reap(holder)
    # Reads take no lock and the lock is free again.
    reg.register({"id": "blocked", "url": URL})
    assert reg.get("blocked")["id"] == "blocked"


def test_ambiguous_lists_the_candidates(reg: Registry) -> None:
    reg.register({"id": "one", "url": URL, "capabilities": {"tools": ["dup"]}})
    reg.register({"id": "two", "url": URL, "capabilities": {"tools": ["dup"]}})
    with pytest.raises(peer_registry.AmbiguousError) as excinfo:
        reg.resolve_tool("dup")
    message = check(excinfo, -8)
    assert "one" in message and "two" in message


@pytest.mark.parametrize(
    "oversized",
    [
        {"id": "big", "url": URL, "name": "n" * 100_000},
        {"id": "big", "url": URL, "capabilities": {"tools": [f"t{i}" for i in range(5000)]}},
        {"id": "big", "url": URL, "metadata": {"blob": ["x" * 1000] * 200}},
    ],
)
def test_limit_exceeded(reg: Registry, oversized: dict) -> None:
    with pytest.raises(peer_registry.LimitExceededError) as excinfo:
        reg.register(oversized)
    check(excinfo, -9)
    with pytest.raises(peer_registry.NotFoundError):
        reg.get("big")


def test_closed_registry(registry_path: Path, lib: peer_registry.Library) -> None:
    reg = Registry(registry_path)
    reg.close()
    for call in (lambda: reg.get("x"), lambda: reg.list(), lambda: reg.register({"id": "x", "url": URL}),
                 lambda: reg.prune(), lambda: reg.watch()):
        with pytest.raises(peer_registry.ClosedError) as excinfo:
            call()
        check(excinfo, -10)


def test_library_reports_closed_for_a_closed_handle(registry_path: Path, lib: peer_registry.Library) -> None:
    # The binding never passes a closed handle on; this checks the library's own promise.
    handle = ctypes.c_void_p()
    err = ctypes.c_void_p()
    assert lib.peerreg_open(ctypes.byref(handle), str(registry_path).encode(), ctypes.byref(err)) == 0
    assert not err.value
    lib.peerreg_close(handle)
    out = ctypes.c_void_p()
    rc = lib.peerreg_get(handle, b"x", ctypes.byref(out), ctypes.byref(err))
    assert rc == -10
    assert not out.value
    assert isinstance(lib.error(rc, err), peer_registry.ClosedError)
    lib.peerreg_close(handle)  # closing twice is a no-op


def test_handle_inherited_across_fork_is_closed(reg: Registry, registry_path: Path) -> None:
    reg.register({"id": "parent", "url": URL})
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report what the inherited handle does, then leave without cleanup
        try:
            try:
                reg.get("parent")
                outcome = "no error"
            except peer_registry.RegistryError as e:
                outcome = f"{type(e).__name__} {e.code}"
            os.write(write_end, json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], 30)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report, "the forked child hung on its inherited handle"
    outcome = json.loads(report)
    assert outcome == "ClosedError -10"
    assert reg.get("parent")["id"] == "parent"  # the child did not unregister it


def test_every_error_is_a_registry_error(reg: Registry) -> None:
    for raiser in (lambda: reg.get("missing"), lambda: reg.register({"id": "bad/id", "url": URL})):
        with pytest.raises(peer_registry.RegistryError):
            raiser()


# ---- errors where Python users look for them ------------------------------------------------

def test_errors_are_also_the_builtin_exceptions_python_code_catches(reg: Registry, registry_path: Path) -> None:
    assert issubclass(peer_registry.LockTimeoutError, TimeoutError)
    assert issubclass(peer_registry.RegistryIOError, OSError)
    assert issubclass(peer_registry.LibraryNotFoundError, peer_registry.RegistryError)
    assert issubclass(peer_registry.LibraryNotFoundError, OSError)
    assert error_for_code(-7, "held by pid 1").errno == errno.ETIMEDOUT
    io = error_for_code(-5, "fsync failed")
    assert isinstance(io, OSError) and io.errno == errno.EIO and str(io) == "fsync failed"
    # A real lock timeout is caught by `except TimeoutError`.
    holder = spawn_python(HOLD_LOCK, str(registry_path) + ".lock")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        os.environ["PEER_REGISTRY_LOCK_TIMEOUT_MS"] = "200"
        try:
            with Registry(registry_path) as short:
                with pytest.raises(TimeoutError):
                    short.register({"id": "blocked", "url": URL})
        finally:
            del os.environ["PEER_REGISTRY_LOCK_TIMEOUT_MS"]
    finally:
        reap(holder)
    # A library that cannot be found is caught by `except RegistryError`.
    missing = LibraryNotFoundError("could not load libpeerregistry")
    assert isinstance(missing, peer_registry.RegistryError) and missing.code == 0
    assert missing.errno == errno.ENOENT and str(missing) == "could not load libpeerregistry"
    assert pickle.loads(pickle.dumps(missing)).message == missing.message


@pytest.mark.parametrize("status", [7, -1, 4])
def test_an_unknown_status_number_is_an_invalid_argument(reg: Registry, status: int) -> None:
    with pytest.raises(peer_registry.InvalidArgumentError) as excinfo:
        reg.list(status=status)
    assert str(status) in str(excinfo.value) and "HEALTHY" in str(excinfo.value)
    with pytest.raises(peer_registry.InvalidArgumentError):
        reg.list_with_generation(status=status)


def test_an_unknown_status_name_is_an_invalid_argument(reg: Registry) -> None:
    with pytest.raises(peer_registry.InvalidArgumentError):
        reg.list(status="SUPERB")
    with pytest.raises(TypeError):
        reg.list(status=1.5)  # type: ignore[arg-type]


def test_a_registry_collected_with_live_registrations_warns(registry_path: Path) -> None:
    forgotten = Registry(registry_path)
    forgotten.register({"id": "forgotten", "url": URL})
    with pytest.warns(ResourceWarning, match=r"live registrations \['forgotten'\]"):
        del forgotten
        gc.collect()
    with Registry(registry_path) as reg:
        assert reg.list() == []  # collecting it unregistered the lease entry


def test_no_warning_without_live_registrations(registry_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        reader = Registry(registry_path)
        reader.list()
        del reader
        gc.collect()
        done = Registry(registry_path)
        done.register({"id": "done", "url": URL})
        done.unregister("done")
        del done
        gc.collect()
        static = Registry(registry_path)
        static.register({"id": "static", "url": URL, "liveness": "none"})  # outlives the handle by design
        del static
        gc.collect()
        closed = Registry(registry_path)
        closed.register({"id": "closed", "url": URL})
        closed.close()
        del closed
        gc.collect()
