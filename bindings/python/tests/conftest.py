from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import peer_registry


@pytest.fixture(autouse=True)
def _no_default_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # A test that forgets its path must never touch the user's ~/.peer-plan/servers.json.
    default = tmp_path_factory.mktemp("default-registry") / "servers.json"
    monkeypatch.setenv("PEER_REGISTRY_PATH", str(default))


@pytest.fixture(scope="session")
def lib() -> peer_registry.Library:
    return peer_registry.load_library()


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return tmp_path / "servers.json"


@pytest.fixture
def reg(registry_path: Path, lib: peer_registry.Library) -> Iterator[peer_registry.Registry]:
    with peer_registry.Registry(registry_path) as r:
        yield r


@pytest.fixture
def other(registry_path: Path, lib: peer_registry.Library) -> Iterator[peer_registry.Registry]:
    """A second, independent handle on the same registry file."""
    with peer_registry.Registry(registry_path) as r:
        yield r


class _Deadline(Exception):
    pass


@pytest.fixture
def deadline() -> Iterator[Callable[[float], None]]:
    """deadline(seconds): fail a blocking call that does not return in time (SIGALRM)."""

    def expired(signum: int, frame: Any) -> None:
        raise _Deadline("blocking call did not return before the test's deadline")

    previous = signal.signal(signal.SIGALRM, expired)

    def arm(seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds)

    try:
        yield arm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
