"""boundary: what a claimed row must hold before anything runs it."""

from __future__ import annotations

import pytest

from offload.boundary import job_problem, options_problem, refused_row
from offload.serialization import dumps
from offload.store.rules import merged_saved
from offload.types import JobState
from tests.unit.test_retry import claimed

LIMIT = 1024


def test_a_well_formed_row_has_no_problem() -> None:
    assert job_problem(claimed(args='["x"]', options='{"backoff":2.0}'), LIMIT) is None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"args": b"\x00\xff"}, "args holds bytes"),
        ({"kwargs": None}, "kwargs holds NoneType"),
        ({"attempt": "1"}, "attempt holds str"),
        ({"priority": 1.5}, "priority holds float"),
        ({"timeout": "soon"}, "timeout holds str"),
        ({"timeout": float("inf")}, "timeout holds float inf"),
        ({"timeout": -1}, "timeout holds int -1"),
        ({"args": dumps(["é" * 600])}, "args and kwargs hold 1206 bytes, over max_payload_bytes"),
        ({"options": "{"}, "options holds text that is not JSON"),
        ({"options": '"x"'}, "options holds str"),
        ({"options": '{"backoff": "fast"}'}, "options.backoff holds str"),
        ({"options": '{"backoff": [1, -2]}'}, "options.backoff holds list"),
        ({"options": '{"memory_limit": true}'}, "options.memory_limit holds bool"),
        ({"options": '{"memory_limit": 0}'}, "options.memory_limit holds int 0"),
    ],
)
def test_each_problem_names_the_column(fields: dict[str, object], words: str) -> None:
    problem = job_problem(claimed(**fields), LIMIT)
    assert problem is not None and words in problem, problem


def test_unknown_option_keys_are_left_to_newer_releases() -> None:
    assert options_problem('{"backoff": [1, 2], "memory_limit": 5, "later": {"x": 1}}') is None


def test_a_refused_row_fails_for_good_with_a_dispatch_error() -> None:
    outcome = refused_row(claimed(), "args holds bytes", worker_id="w")
    assert outcome.state is JobState.FAILED and outcome.count_error
    assert outcome.error is not None and '"DispatchError"' in outcome.error
    assert outcome.reason == "cannot dispatch the job: args holds bytes"


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ('{"a":1}', '{"a":1,"k":[2]}'),
        (None, '{"k":[2]}'),
        ("garbage", '{"k":[2]}'),
        ("[1]", '{"k":[2]}'),
    ],
)
def test_merged_saved_replaces_stored_text_that_is_not_an_object(
    stored: str | None, expected: str
) -> None:
    assert merged_saved(stored, "k", "[2]") == expected


def test_merged_saved_drops_a_value_that_does_not_decode() -> None:
    assert merged_saved("{}", "k", "[1e400]") is None
