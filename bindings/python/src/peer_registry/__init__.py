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
from ._listing import Listing
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
from .registry import Registry, registered
from .watch import Watch

__version__ = "0.2.0"

# The typing aids (and the Health enum) live in .types, which imports typing and enum: loaded
# when first asked for (PEP 562), so that `import peer_registry` stays cheap.
_FROM_TYPES = ("Health", "HealthLike", "ServerEntry", "Capabilities", "HealthInfo", "WatchEvent")


def __getattr__(name: str) -> object:
    if name in _FROM_TYPES:
        from . import types

        value = getattr(types, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'peer_registry' has no attribute {name!r}")


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
