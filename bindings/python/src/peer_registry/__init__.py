"""peer_registry: Python binding of libpeerregistry, the shared registry of local MCP servers.

    import peer_registry

    with peer_registry.registered(id="journey", url="http://127.0.0.1:8080/mcp",
                                  tools=["findTrips"]) as entry:
        serve()                                   # listed while the block runs

    with peer_registry.Registry() as reg:         # $PEER_REGISTRY_PATH or ~/.peer-plan/servers.json
        reg.resolve_tool("findTrips")["url"]
        for event in reg.watch():
            print(event["added"], event["removed"], event["changed"])

A thin ctypes skin over include/peer_registry.h: locking, file format, liveness, resolution and
validation all live in the library. The library is found as described in
:func:`load_library`.
"""

from ._lib import Library, load_library
from .errors import (
    AlreadyExistsError,
    AmbiguousError,
    ClosedError,
    CorruptRegistryError,
    InvalidArgumentError,
    LibraryNotFoundError,
    LimitExceededError,
    LockTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RegistryError,
    RegistryIOError,
)
from .registry import HealthLike, Registry, registered
from .types import Capabilities, Health, HealthInfo, Listing, ServerEntry, WatchEvent
from .watch import Watch

__version__ = "0.1.0"

__all__ = [
    "Registry",
    "Watch",
    "registered",
    "Library",
    "load_library",
    "Health",
    "HealthLike",
    "ServerEntry",
    "Capabilities",
    "HealthInfo",
    "WatchEvent",
    "Listing",
    "RegistryError",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "CorruptRegistryError",
    "RegistryIOError",
    "PermissionDeniedError",
    "LockTimeoutError",
    "AmbiguousError",
    "LimitExceededError",
    "ClosedError",
    "LibraryNotFoundError",
]
