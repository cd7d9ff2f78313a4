"""JSON in and out of the library without importing the ``json`` package.

``import json`` imports ``re`` (and with it ``enum``, ``functools``, ``collections``): about
half of what importing peer_registry and making a first call used to cost. CPython's ``_json``
accelerator, which ``json`` itself uses, needs none of that, so it is used directly here with
the same settings as ``json.loads`` / ``json.dumps(ensure_ascii=False, allow_nan=False)``.
Where ``_json`` is missing (another Python implementation) the ``json`` package is used.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers know it)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["loads", "dumps"]


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


class _DecodeContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constant)
    memo: "dict[Any, Any]" = {}


def _default(value: "Any") -> "Any":
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


try:
    import _json as _c
except ImportError:  # pragma: no cover - not CPython
    _c = None

if _c is not None:
    _scan = _c.make_scanner(_DecodeContext())
    _WHITESPACE = " \t\n\r"

    def loads(text: str) -> "Any":
        """``json.loads(text)`` for the library's output (also rejects trailing data)."""
        start = 0
        while start < len(text) and text[start] in _WHITESPACE:
            start += 1
        try:
            value, end = _scan(text, start)
        except StopIteration as e:
            raise ValueError(f"invalid JSON from libpeerregistry at character {e.value}") from None
        finally:
            _DecodeContext.memo.clear()
        while end < len(text) and text[end] in _WHITESPACE:
            end += 1
        if end != len(text):
            raise ValueError(f"invalid JSON from libpeerregistry: extra data at character {end}")
        return value

    def dumps(value: "Any") -> str:
        """``json.dumps(value, ensure_ascii=False, allow_nan=False)``."""
        # markers (a dict) detects circular references, as json.dumps does.
        encode = _c.make_encoder({}, _default, _c.encode_basestring, None, ": ", ", ", False, False, False)
        return "".join(encode(value, 0))

else:  # pragma: no cover
    import json as _py

    def loads(text: str) -> "Any":
        return _py.loads(text)

    def dumps(value: "Any") -> str:
        return _py.dumps(value, ensure_ascii=False, allow_nan=False)
