"""retry: the backoff, and what an error or a crash turns a run into."""

from __future__ import annotations

import dataclasses
import re

import pytest

from offload.retry import BACKOFF_MAX, after_crash, after_error, backoff_delay
from offload.types import ClaimedJob, ErrorInfo, JobState

ERROR = ErrorInfo("ValueError", "boom", "Traceback ...\nValueError: boom\n")


def claimed(**fields: object) -> ClaimedJob:
    base: dict[str, object] = dict(
        id="j1", task="t", queue="default", args="[]", kwargs="{}", attempt=1,
        max_attempts=3, errors=0, crashes=0, timeout=None, options="{}",
    )  # fmt: skip
    base.update(fields)
    return ClaimedJob(**base)  # type: ignore[arg-type]


def samples(options: dict[str, object], errors: int, n: int = 300) -> list[float]:
    return [backoff_delay(options, errors) for _ in range(n)]


# -- backoff_delay -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "errors", "full"),
    [
        (2.0, 1, 2.0),
        (2.0, 2, 4.0),
        (2.0, 3, 8.0),
        (2.0, 10, 1024.0),
        (5, 4, 40.0),
        (0.5, 1, 0.5),
    ],
)
def test_exponential_backoff_with_jitter_in_half_to_full(
    base: float, errors: int, full: float
) -> None:
    got = samples({"backoff": base}, errors)
    assert all(0.5 * full <= d <= full for d in got), (min(got), max(got))
    assert len(set(got)) > 1  # jittered, not a constant
    assert min(got) < 0.7 * full and max(got) > 0.8 * full  # spread over the whole range


def test_default_backoff_base_is_two_seconds() -> None:
    got = samples({}, 3)
    assert all(4.0 <= d <= 8.0 for d in got)


def test_zero_errors_waits_like_the_first() -> None:
    assert all(1.0 <= d <= 2.0 for d in samples({}, 0))


def test_exponential_backoff_is_capped_at_backoff_max() -> None:
    assert BACKOFF_MAX == 3600.0
    for errors in (12, 20, 41, 500, 10_000):
        got = samples({"backoff": 2.0}, errors, n=100)
        assert all(BACKOFF_MAX / 2 <= d <= BACKOFF_MAX for d in got), errors
    assert max(samples({"backoff": 10_000.0}, 1, n=100)) <= BACKOFF_MAX


def test_explicit_list_gives_one_delay_per_retry_and_the_last_repeats() -> None:
    options = {"backoff": [5, 10, 30]}
    got = [backoff_delay(options, n) for n in range(0, 8)]
    assert got == [5.0, 5.0, 10.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    assert all(type(d) is float for d in got)


def test_explicit_empty_list_means_no_delay() -> None:
    assert backoff_delay({"backoff": []}, 3) == 0.0


# -- after_error -------------------------------------------------------------------------


def test_error_with_attempts_left_requeues_after_the_backoff() -> None:
    job = claimed(errors=0, max_attempts=3, attempt=1, options='{"backoff": [7, 20]}')
    outcome = after_error(job, ERROR, "task raised ValueError", worker_id="w1")
    assert (outcome.job_id, outcome.attempt, outcome.state) == ("j1", 1, JobState.QUEUED)
    assert outcome.delay == 7.0
    assert outcome.error == ERROR.to_json()
    assert outcome.reason == "task raised ValueError; retry 1/2 in 7.0 s"
    assert (outcome.count_error, outcome.crashed, outcome.worker_id) == (True, False, "w1")
    assert outcome.result is None


def test_second_error_uses_the_second_delay() -> None:
    job = claimed(errors=1, max_attempts=3, attempt=2, options='{"backoff": [7, 20]}')
    outcome = after_error(job, ERROR, "boom", worker_id=None)
    assert outcome.state is JobState.QUEUED and outcome.delay == 20.0
    assert outcome.reason == "boom; retry 2/2 in 20.0 s"
    assert outcome.worker_id is None


def test_error_with_default_options_uses_the_exponential_backoff() -> None:
    outcome = after_error(claimed(errors=2, max_attempts=5), ERROR, "boom", worker_id="w")
    assert outcome.state is JobState.QUEUED
    assert 4.0 <= outcome.delay <= 8.0
    assert re.fullmatch(r"boom; retry 3/4 in \d+\.\d s", outcome.reason)
    assert outcome.reason.endswith(f"in {outcome.delay:.1f} s")


def test_explicit_delay_overrides_the_backoff() -> None:
    job = claimed(options='{"backoff": [100]}')
    outcome = after_error(job, ERROR, "task not known here", worker_id="w1", delay=60.0)
    assert outcome.state is JobState.QUEUED and outcome.delay == 60.0
    assert outcome.reason == "task not known here; retry 1/2 in 60.0 s"


def test_last_error_fails_the_job() -> None:
    job = claimed(errors=2, max_attempts=3, attempt=3)
    outcome = after_error(job, ERROR, "boom", worker_id="w1", delay=60.0)
    assert (outcome.job_id, outcome.attempt, outcome.state) == ("j1", 3, JobState.FAILED)
    assert outcome.reason == "boom"
    assert outcome.delay == 0.0 and outcome.error == ERROR.to_json()
    assert (outcome.count_error, outcome.crashed, outcome.worker_id) == (True, False, "w1")


def test_a_single_attempt_job_fails_on_its_first_error() -> None:
    outcome = after_error(claimed(max_attempts=1), ERROR, "boom", worker_id="w1")
    assert outcome.state is JobState.FAILED


def test_crashes_do_not_use_up_attempts() -> None:
    # The decision counts errors, not attempts: a job that crashed twice has all its retries.
    job = claimed(attempt=3, errors=0, crashes=2, max_attempts=2)
    assert after_error(job, ERROR, "boom", worker_id="w").state is JobState.QUEUED


def test_the_error_is_stored_truncated() -> None:
    huge = dataclasses.replace(ERROR, traceback="x" * 100_000)
    outcome = after_error(claimed(max_attempts=1), huge, "boom", worker_id="w")
    assert outcome.error == huge.to_json() and outcome.error is not None
    assert len(outcome.error) < 40_000


# -- after_crash -------------------------------------------------------------------------


def test_crash_below_the_limit_runs_the_job_again_at_once() -> None:
    job = claimed(crashes=0, attempt=4)
    outcome = after_crash(job, ERROR, "worker died", crash_limit=3, worker_id="w1")
    assert (outcome.job_id, outcome.attempt, outcome.state) == ("j1", 4, JobState.QUEUED)
    assert outcome.delay == 0.0
    assert (outcome.count_error, outcome.crashed) == (False, True)
    assert outcome.error == ERROR.to_json() and outcome.worker_id == "w1"
    assert outcome.reason == "worker died; crash 1/3, running it again"


def test_crash_ignores_the_attempts_left() -> None:
    job = claimed(crashes=1, errors=2, max_attempts=3)
    outcome = after_crash(job, ERROR, "killed", crash_limit=3, worker_id=None)
    assert outcome.state is JobState.QUEUED
    assert outcome.reason == "killed; crash 2/3, running it again"


def test_crash_at_the_limit_quarantines() -> None:
    job = claimed(crashes=2)
    outcome = after_crash(job, ERROR, "killed", crash_limit=3, worker_id="w2")
    assert outcome.state is JobState.QUARANTINED
    assert (outcome.count_error, outcome.crashed) == (False, True)
    assert outcome.reason == "killed; quarantined after 3 crashes"
    assert outcome.error == ERROR.to_json() and outcome.worker_id == "w2"


def test_crash_limit_of_one_quarantines_on_the_first_crash() -> None:
    outcome = after_crash(claimed(), ERROR, "oom", crash_limit=1, worker_id="w")
    assert outcome.state is JobState.QUARANTINED
    assert outcome.reason == "oom; quarantined after 1 crash"
