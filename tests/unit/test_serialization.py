"""serialization: strict JSON in, the same value out, or an error naming the bad part."""

from __future__ import annotations

import datetime
import decimal
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.errors import PayloadTooLarge, SerializationError
from offload.serialization import decode_options, dumps, dumps_limited, loads

# -- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        10**30,
        1.5,
        -0.0,
        "",
        "héllo \u2028 \U0001f600",
        [],
        {},
        [1, "two", None, 3.25, False],
        {"a": 1, "b": None, "c": "x"},
        {"nested": [1, [2, [3, {"deep": [True]}]]], "empty": {"l": [], "d": {}}},
        [{"k": [1.0, 2]}, [[["x"]]]],
    ],
)
def test_round_trip_gives_the_same_value(value: Any) -> None:
    text = dumps(value)
    assert isinstance(text, str)
    assert exact(loads(text), value)


def test_dumps_is_compact_and_keeps_non_ascii() -> None:
    assert dumps({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'
    assert dumps([{"x": 1}, [2]]) == '[{"x":1},[2]]'


def test_dict_key_order_survives() -> None:
    value = {"z": 1, "a": 2, "m": {"y": 1, "b": 2}}
    back = loads(dumps(value))
    assert list(back) == ["z", "a", "m"] and list(back["m"]) == ["y", "b"]


def test_shared_but_not_recursive_containers_are_accepted() -> None:
    shared = [1, 2]
    assert loads(dumps({"a": shared, "b": [shared, shared]})) == {
        "a": [1, 2],
        "b": [[1, 2], [1, 2]],
    }


# -- rejections, with the path ----------------------------------------------------------


def rejection(value: Any, what: str = "args") -> SerializationError:
    with pytest.raises(SerializationError) as info:
        dumps(value, what)
    assert not isinstance(info.value, PayloadTooLarge)
    return info.value


@pytest.mark.parametrize(
    ("value", "path", "reason"),
    [
        (float("nan"), "args", "nan has no JSON form"),
        (float("inf"), "args", "inf has no JSON form"),
        ([1, float("-inf")], "args[1]", "-inf has no JSON form"),
        ({"x": float("nan")}, "args['x']", "nan has no JSON form"),
        ([1, {"a": [0, float("inf")]}], "args[1]['a'][1]", "inf has no JSON form"),
        (b"raw", "args", "bytes b'raw' has no JSON form"),
        ([[b"x"]], "args[0][0]", "bytes b'x' has no JSON form"),
        ({1, 2}, "args", "set {1, 2} has no JSON form"),
        ([0, {"s": {3}}], "args[1]['s']", "set {3} has no JSON form"),
        ((1, 2), "args", "tuple would come back as a list; pass a list"),
        ([1, {"when": (1, 2)}], "args[1]['when']", "tuple would come back as a list"),
        ({1: "a"}, "args[1]", "dict key 1 is a int; JSON keys are strings"),
        ({"a": {2.5: 1}}, "args['a'][2.5]", "dict key 2.5 is a float; JSON keys are strings"),
        ({"ok": 1, None: 2}, "args[None]", "dict key None is a NoneType"),
        ({(1, 2): 0}, "args[(1, 2)]", "dict key (1, 2) is a tuple"),
        (decimal.Decimal("1.5"), "args", "Decimal Decimal('1.5') has no JSON form"),
    ],
)
def test_rejection_names_the_path_of_the_first_bad_part(value: Any, path: str, reason: str) -> None:
    error = rejection(value)
    assert error.path == path
    assert str(error).startswith(f"{path} is not strict JSON: ")
    assert reason in str(error)


def test_datetime_is_refused_at_its_path() -> None:
    when = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
    error = rejection([1, {"when": when}])
    assert error.path == "args[1]['when']"
    assert "datetime datetime.datetime(2024, 5, 1, 12, 30" in str(error)
    assert "has no JSON form" in str(error)
    assert rejection({"day": datetime.date(2024, 5, 1)}, "kwargs").path == "kwargs['day']"


def test_first_bad_part_wins() -> None:
    error = rejection({"a": 1, "b": [b"x"], "c": {1, 2}})
    assert error.path == "args['b'][0]"


def test_long_reprs_are_shortened() -> None:
    error = rejection({"blob": b"x" * 500})
    assert error.path == "args['blob']"
    assert str(error) == f"args['blob'] is not strict JSON: bytes b'{'x' * 55}... has no JSON form"


def test_recursive_list_is_refused_where_it_points_back() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    error = rejection(loop)
    assert error.path == "args[1]"
    assert "the container contains itself (recursive structure)" in str(error)


def test_recursive_dict_is_refused_where_it_points_back() -> None:
    inner: dict[str, Any] = {}
    inner["self"] = inner
    error = rejection({"x": [inner]}, "kwargs")
    assert error.path == "kwargs['x'][0]['self']"
    assert "recursive structure" in str(error)


def test_default_name_of_the_value_is_value() -> None:
    with pytest.raises(SerializationError) as info:
        dumps([float("nan")])
    assert info.value.path == "value[0]"


def test_serialization_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        dumps({1, 2})


# -- size limit --------------------------------------------------------------------------


def test_dumps_limited_accepts_text_up_to_the_limit() -> None:
    text = dumps_limited("é" * 7, "result", 16)  # 2 quotes + 7 two-byte characters
    assert text == '"ééééééé"' and len(text.encode()) == 16


def test_dumps_limited_counts_utf8_bytes_not_characters() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        dumps_limited("é" * 7, "result", 15)  # 9 characters, 16 bytes
    error = info.value
    assert (error.size, error.limit, error.path) == (16, 15, "result")
    assert str(error) == "result is 16 bytes encoded, over the limit of 15 bytes"
    assert isinstance(error, SerializationError)


def test_dumps_limited_refuses_a_large_ascii_payload() -> None:
    value = {"rows": list(range(1000))}
    size = len(dumps(value))
    assert dumps_limited(value, "args", size) == dumps(value)
    with pytest.raises(PayloadTooLarge) as info:
        dumps_limited(value, "args", size - 1)
    assert (info.value.size, info.value.limit) == (size, size - 1)


def test_dumps_limited_still_refuses_non_json_with_its_path() -> None:
    with pytest.raises(SerializationError) as info:
        dumps_limited({"k": (1,)}, "saved['k']", 10_000)
    assert not isinstance(info.value, PayloadTooLarge)
    assert info.value.path == "saved['k']['k']"


# -- options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("{}", {}),
        ('{"backoff": [1, 5], "memory_limit": 100}', {"backoff": [1, 5], "memory_limit": 100}),
        ("[1, 2]", {}),
        ("null", {}),
        ('"text"', {}),
        ("3", {}),
    ],
)
def test_decode_options_gives_a_dict(text: str, expected: dict[str, Any]) -> None:
    assert decode_options(text) == expected


@pytest.mark.parametrize("text", ["{not json", "{", "nul", "[1,"])
def test_decode_options_of_malformed_text_gives_an_empty_dict(text: str) -> None:
    assert decode_options(text) == {}


def test_loads_refuses_text_that_is_not_json() -> None:
    with pytest.raises(ValueError):
        loads("{not json")


# -- property ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=40,
)


def exact(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (``1 == 1.0 == True`` is not enough),
    the same sign of zero and the same dict key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(exact(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


@settings(database=None, deadline=None)
@given(json_values)
def test_any_json_value_round_trips_exactly(value: Any) -> None:
    text = dumps(value)
    assert exact(loads(text), value)
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@settings(database=None, deadline=None)
@given(json_values)
def test_a_tuple_anywhere_is_refused(value: Any) -> None:
    with pytest.raises(SerializationError) as info:
        dumps({"v": value, "bad": (1,)}, "args")
    assert info.value.path == "args['bad']"


def test_an_int_too_long_for_json_text_is_named_by_its_path() -> None:
    with pytest.raises(SerializationError, match=r"args\[0\]\['n'\] is not strict JSON: int with"):
        dumps([{"n": 10**5000}], "args")


@pytest.mark.parametrize("text", ["[NaN]", '{"a": Infinity}', "-Infinity"])
def test_loads_refuses_the_constants_dumps_never_writes(text: str) -> None:
    with pytest.raises(SerializationError, match="is not strict JSON"):
        loads(text)


@pytest.mark.parametrize("text", ["[1e400]", '{"a": -1e999}'])
def test_loads_refuses_numbers_that_only_decode_to_infinity(text: str) -> None:
    with pytest.raises(SerializationError, match="is out of range for a JSON number"):
        loads(text)
