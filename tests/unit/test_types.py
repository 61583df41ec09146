"""types: ErrorInfo's stored form, JobState.finished, Progress.percent."""

from __future__ import annotations

import json

import pytest

from offload.types import TERMINAL_STATES, TRACEBACK_LIMIT, ErrorInfo, JobState, Progress


class Boom(Exception):
    pass


class Outer:
    class Inner(RuntimeError):
        pass


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


# -- ErrorInfo.from_exception ------------------------------------------------------------


def test_builtin_exception_keeps_its_bare_name() -> None:
    info = ErrorInfo.from_exception(raised(ValueError("bad value")))
    assert (info.type, info.message) == ("ValueError", "bad value")


def test_other_exceptions_are_named_with_their_module() -> None:
    assert ErrorInfo.from_exception(Boom("x")).type == "tests.unit.test_types.Boom"
    assert ErrorInfo.from_exception(Outer.Inner()).type == "tests.unit.test_types.Outer.Inner"
    with pytest.raises(ValueError) as caught:
        json.loads("{")
    assert ErrorInfo.from_exception(caught.value).type == "json.decoder.JSONDecodeError"


def test_exceptions_of_main_keep_their_bare_name() -> None:
    script_error = type("ScriptError", (Exception,), {"__module__": "__main__"})
    assert ErrorInfo.from_exception(script_error("s")).type == "ScriptError"


def test_from_exception_keeps_the_traceback_text() -> None:
    def failing_function() -> None:
        raise Boom("deep")

    try:
        failing_function()
    except Boom as exc:
        info = ErrorInfo.from_exception(exc)
    assert info.traceback.startswith("Traceback (most recent call last):\n")
    assert "failing_function" in info.traceback
    assert info.traceback.endswith("tests.unit.test_types.Boom: deep\n")
    assert info.message == "deep"


def test_exception_never_raised_has_only_its_last_line() -> None:
    info = ErrorInfo.from_exception(KeyError("k"))
    assert (info.message, info.traceback) == ("'k'", "KeyError: 'k'\n")


# -- ErrorInfo.to_json / from_json -------------------------------------------------------


def test_to_json_is_the_compact_stored_object() -> None:
    info = ErrorInfo("E", "mé", "tb")
    assert info.to_json() == '{"type":"E","message":"mé","traceback":"tb"}'
    assert info.to_dict() == {"type": "E", "message": "mé", "traceback": "tb"}


def test_to_json_keeps_a_traceback_at_the_limit() -> None:
    tb = "t" * TRACEBACK_LIMIT
    assert json.loads(ErrorInfo("E", "m", tb).to_json())["traceback"] == tb


def test_to_json_keeps_the_end_of_a_long_traceback() -> None:
    assert TRACEBACK_LIMIT == 32 * 1024
    tb = "HEAD\n" + "x" * TRACEBACK_LIMIT + "\nTAIL: the error line\n"
    stored = json.loads(ErrorInfo("E", "m", tb).to_json())["traceback"]
    assert stored == "...\n" + tb[-TRACEBACK_LIMIT:]
    assert stored.startswith("...\nx") and stored.endswith("TAIL: the error line\n")
    assert "HEAD" not in stored
    assert len(stored) == TRACEBACK_LIMIT + len("...\n")


def test_to_json_keeps_the_start_of_a_long_message() -> None:
    message = "m" * TRACEBACK_LIMIT + "END"
    stored = json.loads(ErrorInfo("E", message).to_json())["message"]
    assert stored == "m" * TRACEBACK_LIMIT


@pytest.mark.parametrize("text", [None, ""])
def test_from_json_of_nothing_is_none(text: str | None) -> None:
    assert ErrorInfo.from_json(text) is None


def test_from_json_round_trips_to_json() -> None:
    info = ErrorInfo("pkg.Boom", "it broke", "Traceback ...\n")
    assert ErrorInfo.from_json(info.to_json()) == info


def test_from_json_fills_missing_fields() -> None:
    assert ErrorInfo.from_json('{"message": "only this"}') == ErrorInfo("Error", "only this", "")
    assert ErrorInfo.from_json("{}") == ErrorInfo("Error", "", "")
    assert ErrorInfo.from_json('{"type": 3, "message": [1]}') == ErrorInfo("3", "[1]", "")


def test_from_json_of_text_that_is_not_json_says_so() -> None:
    assert ErrorInfo.from_json("worker died") == ErrorInfo(
        "Error", "undecodable stored error: 'worker died'"
    )
    long = ErrorInfo.from_json("{" + "z" * 500)
    assert long is not None and long.message == (
        "undecodable stored error: " + repr("{" + "z" * 199)
    )


@pytest.mark.parametrize("text", ['"just text"', "[1, 2]", "42", "null", "true"])
def test_from_json_of_json_that_is_not_an_object_says_so(text: str) -> None:
    assert ErrorInfo.from_json(text) == ErrorInfo(
        "Error", f"stored error is not a JSON object: {text!r}"
    )


# -- JobState ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "finished"),
    [
        (JobState.SCHEDULED, False),
        (JobState.QUEUED, False),
        (JobState.RUNNING, False),
        (JobState.SUCCEEDED, True),
        (JobState.FAILED, True),
        (JobState.CANCELLED, True),
        (JobState.QUARANTINED, True),
    ],
)
def test_finished_is_true_for_the_terminal_states_only(state: JobState, finished: bool) -> None:
    assert state.finished is finished


def test_every_state_is_covered_and_terminal_states_are_listed_sorted() -> None:
    assert len(JobState) == 8  # waiting: a member of a group stage not started yet
    assert TERMINAL_STATES == ("cancelled", "failed", "quarantined", "succeeded")
    assert JobState("queued") is JobState.QUEUED and JobState.QUEUED == "queued"


# -- Progress ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("progress", "percent"),
    [
        (Progress(), None),
        (Progress(5, None), None),
        (Progress(5, 0), None),
        (Progress(0, 10), 0.0),
        (Progress(5, 10), 50.0),
        (Progress(10, 10), 100.0),
        (Progress(15, 10), 100.0),
        (Progress(-3, 10), 0.0),
        (Progress(0.25, 1.0), 25.0),
    ],
)
def test_percent(progress: Progress, percent: float | None) -> None:
    assert progress.percent == percent


def test_percent_is_not_rounded() -> None:
    assert Progress(1, 3).percent == pytest.approx(100 / 3)
    assert Progress(1, 3).percent != 33.0


def test_from_json_of_a_null_type_says_error() -> None:
    assert ErrorInfo.from_json('{"type": null, "message": null}') == ErrorInfo("Error", "", "")
