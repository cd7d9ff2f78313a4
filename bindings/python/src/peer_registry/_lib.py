"""Finding, loading and declaring libpeerregistry (the C ABI in include/peer_registry.h).

The lookup rule, the same in the Python, Node and Go bindings (docs/ABI.md, "Finding the
library"); the first step that applies wins:

1. ``$PEER_REGISTRY_LIB``, when set and not empty: that file;
2. the copy the package ships: ``libpeerregistry.so.0`` beside this file (the platform wheel
   from ``make dist-python`` carries it);
3. the system's ``libpeerregistry.so.0``, through the dynamic loader's search (``make install``,
   a distribution package, ``LD_LIBRARY_PATH``).

A step that applies (the variable is set, the shipped file exists) but whose library does not
load is an error, not a reason to fall through to another library: silently loading a different
build hides mistakes. No path inside a source checkout is ever guessed (tests there set
``$PEER_REGISTRY_LIB``). When nothing loads, :class:`LibraryNotFoundError` names every place
tried and why it failed. A program may also name the file itself (``load_library(path)``,
``Registry(lib=path)``), which bypasses the rule. One library is loaded per process (first use
wins), as in the other bindings.
"""

from __future__ import annotations

import _thread
import ctypes
import os
from ctypes import POINTER, byref, c_char_p, c_int, c_void_p, string_at

from .errors import LibraryNotFoundError, RegistryError, error_for_code

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple, Union

    __all__ = ["Library", "load_library", "resolve_library", "LIB_ENV", "SYSTEM_NAME"]

LIB_ENV = "PEER_REGISTRY_LIB"
SYSTEM_NAME = "libpeerregistry.so.0"
# The file name of the copy a platform wheel ships inside the package (build_wheel.py).
SHIPPED_NAME = "libpeerregistry.so.0"

# PEERREG_VERSION_NUMBER of the header this binding was written against.
HEADER_VERSION_NUMBER = 2000

PEERREG_ETIMEOUT = -7

_VP = c_void_p
_VPP = POINTER(c_void_p)

# name: (restype, argtypes). Every pointer the library returns is declared c_void_p: a
# c_char_p result would be converted to bytes and the pointer itself lost (leaked).
_SIGNATURES = {
    "peerreg_version": (_VP, []),
    "peerreg_version_number": (c_int, []),
    "peerreg_errstr": (_VP, [c_int]),
    "peerreg_open": (c_int, [_VPP, c_char_p, _VPP]),
    "peerreg_close": (None, [_VP]),
    "peerreg_register": (c_int, [_VP, c_char_p, _VPP, _VPP]),
    "peerreg_unregister": (c_int, [_VP, c_char_p, _VPP]),
    "peerreg_set_health": (c_int, [_VP, c_char_p, c_int, c_char_p, _VPP]),
    "peerreg_heartbeat": (c_int, [_VP, c_char_p, _VPP]),
    "peerreg_prune": (c_int, [_VP, POINTER(c_int), _VPP]),
    "peerreg_probe": (c_int, [_VP, c_char_p, c_int, _VPP, _VPP]),
    "peerreg_get": (c_int, [_VP, c_char_p, _VPP, _VPP]),
    "peerreg_list": (c_int, [_VP, c_char_p, _VPP, _VPP]),
    "peerreg_resolve": (c_int, [_VP, c_int, c_char_p, _VPP, _VPP]),
    "peerreg_watch_open": (c_int, [_VPP, _VP, _VPP]),
    "peerreg_resolve_scoped": (c_int, [_VP, c_int, c_char_p, c_int, _VPP, _VPP]),
    "peerreg_watch_open_filtered": (c_int, [_VPP, _VP, c_char_p, _VPP]),
    "peerreg_watch_fd": (c_int, [_VP]),
    "peerreg_watch_next": (c_int, [_VP, c_int, _VPP, _VPP]),
    "peerreg_watch_close": (None, [_VP]),
    "peerreg_free": (None, [_VP]),
    "peerreg_error_code": (c_int, [_VP]),
    "peerreg_error_message": (_VP, [_VP]),
    "peerreg_error_free": (None, [_VP]),
}


class Library:
    """A loaded libpeerregistry with its functions declared. Obtain it from :func:`load_library`.

    ``path`` is what was handed to the loader, ``source`` which lookup step found it
    (``"argument"``, ``"PEER_REGISTRY_LIB"``, ``"package"`` or ``"system"``).
    The ctypes functions are attributes named as in the header (``lib.peerreg_get``).
    """

    path: str
    source: str
    version: str
    version_number: int

    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.source = source
        # The library's own dependencies resolve as the loader normally would; only this
        # one file is named explicitly.
        self._cdll = ctypes.CDLL(path)
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                fn = getattr(self._cdll, name)
            except AttributeError:
                raise LibraryNotFoundError(
                    f"{path} is not a usable libpeerregistry: it does not export {name}"
                ) from None
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        self.version = string_at(self.peerreg_version()).decode("utf-8")
        self.version_number = self.peerreg_version_number()
        major, minor = _major_minor(self.version_number)
        want_major, want_minor = _major_minor(HEADER_VERSION_NUMBER)
        if major != want_major or minor < want_minor:
            raise LibraryNotFoundError(
                f"{path} is libpeerregistry {self.version} ({self.version_number}); this binding "
                f"needs {want_major}.{want_minor}.x or a later {want_major}.x "
                f"(header PEERREG_VERSION_NUMBER {HEADER_VERSION_NUMBER})"
            )

    # Declared for type checkers; set per instance from _SIGNATURES above.
    peerreg_version: Any
    peerreg_version_number: Any
    peerreg_errstr: Any
    peerreg_open: Any
    peerreg_close: Any
    peerreg_register: Any
    peerreg_unregister: Any
    peerreg_set_health: Any
    peerreg_heartbeat: Any
    peerreg_prune: Any
    peerreg_probe: Any
    peerreg_get: Any
    peerreg_list: Any
    peerreg_resolve: Any
    peerreg_watch_open: Any
    peerreg_resolve_scoped: Any
    peerreg_watch_open_filtered: Any
    peerreg_watch_fd: Any
    peerreg_watch_next: Any
    peerreg_watch_close: Any
    peerreg_free: Any
    peerreg_error_code: Any
    peerreg_error_message: Any
    peerreg_error_free: Any

    def __repr__(self) -> str:
        return f"<peer_registry.Library {self.version} from {self.path!r} ({self.source})>"

    def errstr(self, code: int) -> str:
        """The library's static name for a result code, e.g. ``"PEERREG_ENOTFOUND: not found"``."""
        return string_at(self.peerreg_errstr(code)).decode("utf-8", "replace")

    def error(self, rc: int, err: c_void_p) -> RegistryError:
        """Turn a failed call's code and ``peerreg_error*`` into an exception; frees ``err``."""
        message = ""
        try:
            if err.value:
                text = self.peerreg_error_message(err)
                if text:
                    message = string_at(text).decode("utf-8", "replace")
        finally:
            self.peerreg_error_free(err)
        return error_for_code(rc, message or self.errstr(rc))

    def take_string(self, ptr: c_void_p) -> str:
        """Copy out a string the library handed out, then free it with ``peerreg_free``."""
        try:
            if not ptr.value:
                raise RegistryError(0, "libpeerregistry reported success but returned no string")
            return string_at(ptr.value).decode("utf-8")
        finally:
            self.peerreg_free(ptr)

    def call_string(self, fn: Any, *args: object) -> str:
        """Call ``fn(*args, &out, &err)``; return ``out`` as text or raise the mapped error."""
        out = c_void_p()
        err = c_void_p()
        rc = fn(*args, byref(out), byref(err))
        if rc:
            self.peerreg_free(out)  # NULL on failure by contract; freeing NULL is a no-op
            raise self.error(rc, err)
        return self.take_string(out)

    def call(self, fn: Any, *args: object) -> None:
        """Call ``fn(*args, &err)`` and raise the mapped error on failure."""
        err = c_void_p()
        rc = fn(*args, byref(err))
        if rc:
            raise self.error(rc, err)


def _major_minor(version_number: int) -> Tuple[int, int]:
    return version_number // 1_000_000, version_number // 1000 % 1000


def _locate(explicit: Optional[StrPath]) -> Library:
    """Apply the lookup rule (module docstring) and load the first place that applies."""
    tried: List[str] = []

    def fail(last: str) -> LibraryNotFoundError:
        tried.append(last)
        lines = "\n".join(f"  - {t}" for t in tried)
        return LibraryNotFoundError(f"could not load libpeerregistry; tried:\n{lines}")

    def load(path: str, source: str, label: str) -> Library:
        try:
            return Library(path, source)
        except LibraryNotFoundError as e:
            raise fail(f"{label}: {e}") from None
        except OSError as e:
            raise fail(f"{label}: {path}: {e}") from None

    if explicit is not None:
        path = os.fspath(explicit)
        return load(path, "argument", "explicit path argument")

    env = os.environ.get(LIB_ENV)
    if env:
        return load(env, LIB_ENV, f"${LIB_ENV}")
    tried.append(f"${LIB_ENV}: not set")

    shipped = os.path.join(os.path.dirname(os.path.abspath(__file__)), SHIPPED_NAME)
    if os.path.exists(shipped):
        return load(shipped, "package", "the copy shipped in the package")
    tried.append(f"the copy shipped in the package: {shipped} does not exist (not a platform wheel)")

    return load(SYSTEM_NAME, "system", f"the system's {SYSTEM_NAME}")


_lock = _thread.allocate_lock()
_loaded: Optional[Library] = None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a == b


def load_library(path: Optional[StrPath] = None) -> Library:
    """Load libpeerregistry once for this process and return it.

    With ``path``, load that file and nothing else; without, apply the lookup rule
    (``$PEER_REGISTRY_LIB``, the copy shipped in the package, the system's
    ``libpeerregistry.so.0``; module docstring). Once a library is
    loaded, later calls return it; asking for a different file then is an error (one
    libpeerregistry per process, as in the Node and Go bindings). Raises
    :class:`LibraryNotFoundError` naming each place tried.
    """
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _locate(path)
        elif path is not None and not _same_file(os.fspath(path), _loaded.path):
            raise LibraryNotFoundError(
                f"{_loaded.path} is already loaded in this process; cannot also load "
                f"{os.fspath(path)} (one libpeerregistry per process)"
            )
        return _loaded


def resolve_library(lib: Union[Library, StrPath, None]) -> Library:
    """The library a Registry should use: the given Library, else ``load_library(lib)``."""
    if isinstance(lib, Library):
        return lib
    return load_library(lib)
