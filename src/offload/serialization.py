"""Strict JSON encoding for arguments, results and saved data.

A value is accepted only when ``json.loads(json.dumps(value)) == value``: no sets, bytes,
datetimes, Decimals, NaN or infinities, tuples inside values, dicts with non-string keys
or recursive containers. The fast path is one C-level dump, load and compare; only a value
that fails is walked in Python, to name the path of the first bad part.

Nothing is ever unpickled: what a worker reads from the store is JSON text.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from offload.errors import PayloadTooLarge, SerializationError


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{text[:40]} is out of range for a JSON number")
    return value


_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)
#: NaN and Infinity are refused on the way in, as on the way out, and so are numbers
#: that only decode to them (1e400).
_decode = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float).decode


#: Roughly the deepest nesting Python's json module handles on the default recursion limit.
MAX_DEPTH = 900

_SCALARS = frozenset({str, int, float, bool, type(None)})


def _flat(value: Any) -> bool:
    """True for a list of scalars or a str-keyed dict of scalars: the common shape of job
    arguments, for which one encode (with NaN refused) is proof enough of a round trip."""
    kind = type(value)
    if kind is list:
        return all(type(item) in _SCALARS for item in value)
    if kind is dict:
        return all(type(k) is str and type(v) in _SCALARS for k, v in value.items())
    return kind in _SCALARS


def dumps(value: Any, what: str = "value") -> str:
    """Encode ``value`` as compact strict JSON, or raise SerializationError naming the path."""
    if _flat(value):
        try:
            return _encoder.encode(value)
        except ValueError:
            raise _explain(value, what) from None
    try:
        text = _encoder.encode(value)
        same = _decode(text) == value
    except (TypeError, ValueError, RecursionError):
        same = False
    if not same:
        raise _explain(value, what)
    return text


def dumps_limited(value: Any, what: str, limit: int) -> str:
    """Like :func:`dumps`, and refuse text longer than ``limit`` bytes (UTF-8)."""
    text = dumps(value, what)
    if len(text) > limit // 4:  # only count bytes when the text could be over the limit
        size = len(text.encode("utf-8"))
        if size > limit:
            raise PayloadTooLarge(what, size, limit)
    return text


def loads(text: str) -> Any:
    """Decode JSON text produced by :func:`dumps`.

    Raises SerializationError (a ValueError) for text that is not JSON, or that nests
    deeper than Python can decode.
    """
    try:
        return _decode(text)
    except RecursionError:
        raise SerializationError("JSON text nests too deeply to decode") from None
    except ValueError as exc:
        raise SerializationError(f"not valid JSON: {exc}") from None


def _explain(value: Any, path: str) -> SerializationError:
    try:
        problem = _find_problem(value, path, set())
    except RecursionError:
        problem = (path, f"it nests deeper than {MAX_DEPTH} levels")
    if problem is None:  # pragma: no cover - dumps() only calls this for a failing value
        problem = (path, f"{type(value).__name__} does not survive a JSON round trip")
    where, reason = problem
    return SerializationError(f"{where} is not strict JSON: {reason}", where)


def _find_problem(value: Any, path: str, seen: set[int]) -> tuple[str, str] | None:
    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        try:
            str(value)
        except ValueError:  # over sys.get_int_max_str_digits(), which JSON text cannot carry
            return path, f"int with more than {sys.get_int_max_str_digits()} digits"
        return None
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return path, f"{value!r} has no JSON form"
        return None
    if isinstance(value, list | dict):
        if id(value) in seen:
            return path, "the container contains itself (recursive structure)"
        seen = seen | {id(value)}
        if isinstance(value, list):
            for index, item in enumerate(value):
                found = _find_problem(item, f"{path}[{index}]", seen)
                if found:
                    return found
            return None
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}[{key!r}]", (
                    f"dict key {key!r} is a {type(key).__name__}; JSON keys are strings"
                )
            found = _find_problem(item, f"{path}[{key!r}]", seen)
            if found:
                return found
        return None
    if isinstance(value, tuple):
        return path, "tuple would come back as a list; pass a list"
    return path, f"{type(value).__name__} {_short_repr(value)} has no JSON form"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def decode_options(text: str) -> dict[str, Any]:
    """A job's stored options (a JSON object); ``{}`` for empty or malformed text."""
    try:
        value = loads(text) if text else {}
    except SerializationError:
        return {}
    return value if isinstance(value, dict) else {}
