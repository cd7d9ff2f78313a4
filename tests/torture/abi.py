"""A minimal ctypes view of libpeerregistry for the torture runner (independent of
bindings/python, so the torture tests exercise the C ABI itself)."""

from __future__ import annotations

import ctypes
import json
import os
from ctypes import POINTER, byref, c_char_p, c_int, c_void_p, string_at
from typing import Optional, Tuple

OK, EINVAL, ENOTFOUND, EEXISTS, ECORRUPT, EIO, EPERM, ETIMEOUT, EAMBIGUOUS, ELIMIT, ECLOSED = (
    0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10)
NAMES = {OK: "OK", EINVAL: "EINVAL", ENOTFOUND: "ENOTFOUND", EEXISTS: "EEXISTS", ECORRUPT: "ECORRUPT",
         EIO: "EIO", EPERM: "EPERM", ETIMEOUT: "ETIMEOUT", EAMBIGUOUS: "EAMBIGUOUS", ELIMIT: "ELIMIT",
         ECLOSED: "ECLOSED"}
TOOL, RESOURCE, PROMPT = 1, 2, 3

_VPP = POINTER(c_void_p)
_SIG = {
    "peerreg_open": (c_int, [_VPP, c_char_p, _VPP]),
    "peerreg_close": (None, [c_void_p]),
    "peerreg_register": (c_int, [c_void_p, c_char_p, _VPP, _VPP]),
    "peerreg_unregister": (c_int, [c_void_p, c_char_p, _VPP]),
    "peerreg_set_health": (c_int, [c_void_p, c_char_p, c_int, c_char_p, _VPP]),
    "peerreg_heartbeat": (c_int, [c_void_p, c_char_p, _VPP]),
    "peerreg_prune": (c_int, [c_void_p, POINTER(c_int), _VPP]),
    "peerreg_get": (c_int, [c_void_p, c_char_p, _VPP, _VPP]),
    "peerreg_list": (c_int, [c_void_p, c_char_p, _VPP, _VPP]),
    "peerreg_resolve": (c_int, [c_void_p, c_int, c_char_p, _VPP, _VPP]),
    "peerreg_free": (None, [c_void_p]),
    "peerreg_error_code": (c_int, [c_void_p]),
    "peerreg_error_message": (c_void_p, [c_void_p]),
    "peerreg_error_free": (None, [c_void_p]),
}


class Error(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"{NAMES.get(code, code)}: {message}")
        self.code = code
        self.message = message


class Lib:
    def __init__(self, path: str):
        self.c = ctypes.CDLL(path)
        for name, (res, args) in _SIG.items():
            fn = getattr(self.c, name)
            fn.restype = res
            fn.argtypes = args

    def _err(self, e: c_void_p) -> Tuple[int, str]:
        if not e.value:
            return OK, ""
        code = self.c.peerreg_error_code(e)
        msg = string_at(self.c.peerreg_error_message(e)).decode("utf-8", "replace")
        self.c.peerreg_error_free(e)
        return code, msg

    def _out(self, out: c_void_p) -> Optional[str]:
        if not out.value:
            return None
        s = string_at(out.value).decode("utf-8")
        self.c.peerreg_free(out)
        return s


class Registry:
    """One handle. Methods return (rc, message, result)."""

    def __init__(self, lib: Lib, path: str):
        self.lib = lib
        self.h = c_void_p()
        e = c_void_p()
        rc = lib.c.peerreg_open(byref(self.h), path.encode(), byref(e))
        code, msg = lib._err(e)
        if rc != OK:
            raise Error(rc, msg)

    def close(self) -> None:
        if self.h.value:
            self.lib.c.peerreg_close(self.h)
            self.h = c_void_p()

    def _call_out(self, fn, *args):
        out, e = c_void_p(), c_void_p()
        rc = fn(self.h, *args, byref(out), byref(e))
        _, msg = self.lib._err(e)
        return rc, msg, self.lib._out(out)

    def register(self, entry) -> Tuple[int, str, Optional[dict]]:
        text = entry if isinstance(entry, (str, bytes)) else json.dumps(entry)
        rc, msg, out = self._call_out(self.lib.c.peerreg_register, text.encode() if isinstance(text, str) else text)
        return rc, msg, json.loads(out) if out else None

    def unregister(self, id_: str) -> Tuple[int, str]:
        e = c_void_p()
        rc = self.lib.c.peerreg_unregister(self.h, id_.encode(), byref(e))
        return rc, self.lib._err(e)[1]

    def set_health(self, id_: str, status: int, message: Optional[str]) -> Tuple[int, str]:
        e = c_void_p()
        rc = self.lib.c.peerreg_set_health(self.h, id_.encode(), status, message.encode() if message is not None else None, byref(e))
        return rc, self.lib._err(e)[1]

    def heartbeat(self, id_: str) -> Tuple[int, str]:
        e = c_void_p()
        rc = self.lib.c.peerreg_heartbeat(self.h, id_.encode(), byref(e))
        return rc, self.lib._err(e)[1]

    def prune(self) -> Tuple[int, str, int]:
        e, n = c_void_p(), c_int()
        rc = self.lib.c.peerreg_prune(self.h, byref(n), byref(e))
        return rc, self.lib._err(e)[1], n.value

    def get(self, id_: str) -> Tuple[int, str, Optional[dict]]:
        rc, msg, out = self._call_out(self.lib.c.peerreg_get, id_.encode())
        return rc, msg, json.loads(out) if out else None

    def list(self, filter_json: Optional[str] = None) -> Tuple[int, str, Optional[dict]]:
        rc, msg, out = self._call_out(self.lib.c.peerreg_list, filter_json.encode() if filter_json is not None else None)
        return rc, msg, json.loads(out) if out else None

    def resolve(self, kind: int, name: str) -> Tuple[int, str, Optional[dict]]:
        out, e = c_void_p(), c_void_p()
        rc = self.lib.c.peerreg_resolve(self.h, kind, name.encode(), byref(out), byref(e))
        _, msg = self.lib._err(e)
        s = self.lib._out(out)
        return rc, msg, json.loads(s) if s else None

    def live_ids(self) -> list:
        rc, msg, listing = self.list()
        if rc != OK:
            raise Error(rc, msg)
        return [s.get("id") for s in listing["servers"]]


def open_registry(lib: Lib, path: str) -> Registry:
    return Registry(lib, path)


def default_lib_path(repo: str) -> str:
    return os.environ.get("PEER_REGISTRY_LIB") or os.path.join(repo, "build", "lib", "libpeerregistry.so.0")
