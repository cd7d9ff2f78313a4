"""Exceptions raised by peer_registry, one class per ``PEERREG_*`` result code."""

from __future__ import annotations

import errno as _errno

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    from typing import Dict, Type

__all__ = [
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
    "error_for_code",
]


class RegistryError(Exception):
    """An error reported by libpeerregistry.

    ``code`` is the ``PEERREG_*`` result code (a negative int), ``message`` the library's
    message (it names paths, positions, holder pids or candidates where it can).
    """

    code: int = 0

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(RegistryError, ValueError):
    """``PEERREG_EINVAL``: bad argument (invalid id, malformed JSON, unknown field value...)."""

    code = -1


class NotFoundError(RegistryError, LookupError):
    """``PEERREG_ENOTFOUND``: no live entry with that id, or nothing resolves that name."""

    code = -2


class AlreadyExistsError(RegistryError):
    """``PEERREG_EEXISTS``: the id is held by another live registrant."""

    code = -3


class CorruptRegistryError(RegistryError):
    """``PEERREG_ECORRUPT``: the registry file does not parse (message: path + position)."""

    code = -4


class RegistryIOError(RegistryError, OSError):
    """``PEERREG_EIO``: a system call failed (message names it and errno).

    Also an :class:`OSError` (``errno`` is ``errno.EIO``; the failed call's own errno is in
    the message), so ``except OSError`` around file work catches it too.
    """

    code = -5

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.errno = _errno.EIO
        self.strerror = message


class PermissionDeniedError(RegistryError, PermissionError):
    """``PEERREG_EPERM``: unsafe ownership, permissions, symlink or hard link.

    Also a :class:`PermissionError`; ``errno`` is ``errno.EPERM`` and ``strerror`` the
    library's message, which says how to fix it.
    """

    code = -6

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.errno = _errno.EPERM
        self.strerror = message


class LockTimeoutError(RegistryError, TimeoutError):
    """``PEERREG_ETIMEOUT``: the registry file lock was not obtained in time.

    Also a :class:`TimeoutError` (``errno`` is ``errno.ETIMEDOUT``). The message names the pid
    holding the lock.
    """

    code = -7

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.errno = _errno.ETIMEDOUT
        self.strerror = message


class AmbiguousError(RegistryError):
    """``PEERREG_EAMBIGUOUS``: several equally healthy servers declare the name."""

    code = -8


class LimitExceededError(RegistryError):
    """``PEERREG_ELIMIT``: a documented size limit was exceeded."""

    code = -9


class ClosedError(RegistryError):
    """``PEERREG_ECLOSED``: the handle was closed, or was inherited across ``fork()``."""

    code = -10


class LibraryNotFoundError(RegistryError, OSError):
    """libpeerregistry could not be loaded; the message names every place tried.

    Raised by the binding, not the library, so ``code`` is 0 (no ``PEERREG_*`` code applies).
    Also an :class:`OSError` with ``errno.ENOENT``, as a failed ``dlopen`` is.
    """

    code = 0

    def __init__(self, message: str) -> None:
        super().__init__(0, message)
        self.errno = _errno.ENOENT
        self.strerror = message

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.message,))


_BY_CODE: "Dict[int, Type[RegistryError]]" = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        CorruptRegistryError,
        RegistryIOError,
        PermissionDeniedError,
        LockTimeoutError,
        AmbiguousError,
        LimitExceededError,
        ClosedError,
    )
}


def error_for_code(code: int, message: str) -> RegistryError:
    """The exception for a ``PEERREG_*`` code (``RegistryError`` itself for unknown codes)."""
    return _BY_CODE.get(code, RegistryError)(code, message)
