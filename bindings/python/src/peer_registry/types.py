"""The shapes of the JSON the library exchanges (docs/FORMAT.md), as typing aids only.

The dicts are exactly what libpeerregistry returns; the binding adds no schema of its own, and
fields a newer library adds appear in them too.
"""

from __future__ import annotations

import enum
from typing import Any, Dict, List, TypedDict, Union

from ._listing import Listing

__all__ = [
    "Health",
    "Capabilities",
    "HealthInfo",
    "ServerEntry",
    "WatchEvent",
    "Listing",
    "HealthLike",
]


class Health(enum.IntEnum):
    """Health states (``PEERREG_UNKNOWN`` .. ``PEERREG_DOWN``). DOWN servers never resolve."""

    UNKNOWN = 0
    HEALTHY = 1
    DEGRADED = 2
    DOWN = 3


class Capabilities(TypedDict, total=False):
    tools: List[str]
    resources: List[str]
    prompts: List[str]


class HealthInfo(TypedDict, total=False):
    status: str  # "UNKNOWN" | "HEALTHY" | "DEGRADED" | "DOWN"
    message: str
    lastCheck: str
    consecutiveFailures: int  # failed probes in a row; absent after a success


class ServerEntry(TypedDict, total=False):
    """One registry entry. ``id`` and ``url`` are required when registering."""

    id: str
    name: str
    url: str
    port: int
    transport: str  # "http" | "sse" | "ws" | "stdio"
    pid: int
    startedAt: str
    lastSeen: str
    liveness: str  # "lease" | "pid" | "ttl" | "none"
    ttlSeconds: int
    capabilities: Capabilities
    health: HealthInfo
    requiresSession: bool
    metadata: Dict[str, Any]


class WatchEvent(TypedDict):
    """A change seen by a watch; ``removed`` holds the last version of each removed entry."""

    generation: int
    added: List[ServerEntry]
    removed: List[ServerEntry]
    changed: List[ServerEntry]


HealthLike = Union[Health, int, str]
"""A health status as the methods take it: a :class:`Health`, its int value, or its name."""
