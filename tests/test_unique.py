"""Unique windows, keys derived from arguments, debounce and per-key limits as a user
declares them: ``@app.task(unique_key=..., unique_for=..., debounce=..., limit=...)`` and
``using(...)``, on SQLite and PostgreSQL; what is refused at once, and why."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from offload import ConfigError, JobState, Offload
from offload.testing import run_pending
from offload.types import JobFilter
from tests.fixtures.postgres import store_settings


@pytest.fixture
def app(store_url: str) -> Iterator[Offload]:
    app = Offload(settings=store_settings(store_url))
    yield app
    app.close()


def test_one_refresh_per_hour_however_many_ask(app: Offload) -> None:
    @app.task(unique_key=lambda feed: f"feed:{feed}", unique_for=dt.timedelta(hours=1))
    def refresh(feed: str) -> str:
        return feed

    first = refresh.enqueue("news")
    asks = [refresh.enqueue("news") for _ in range(30)]
    assert all(a.deduplicated and a.id == first.id for a in asks)
    assert not refresh.enqueue("sport").deduplicated  # another feed, another key
    assert run_pending(app) == 2
    assert first.refresh().state is JobState.SUCCEEDED
    # Finished, and still within its hour: the key is held.
    again = refresh.enqueue("news")
    assert again.deduplicated and again.id == first.id and again.state is JobState.SUCCEEDED
    assert refresh.using(unique_for=None).enqueue("news").deduplicated is False


def test_a_failure_frees_the_key_when_only_successes_hold_it(app: Offload) -> None:
    calls = []

    @app.task(unique_key="import", unique_for=3600, unique_states=["succeeded"], retries=0)
    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first time fails")

    first = flaky.enqueue()
    run_pending(app)
    assert first.refresh().state is JobState.FAILED
    second = flaky.enqueue()
    assert not second.deduplicated
    run_pending(app)
    assert second.refresh().state is JobState.SUCCEEDED
    assert flaky.enqueue().id == second.id


def test_debounce_runs_once_with_the_last_arguments(app: Offload) -> None:
    seen: list[int] = []

    @app.task(unique_key=lambda doc, version: f"reindex:{doc}", debounce=0.5)
    def reindex(doc: int, version: int) -> None:
        seen.append(version)

    jobs = [reindex.enqueue(7, version) for version in range(5)]
    assert {j.id for j in jobs} == {jobs[0].id}
    assert [j.deduplicated for j in jobs] == [False, True, True, True, True]
    assert jobs[0].refresh().state is JobState.SCHEDULED
    assert run_pending(app) == 0  # not due before the burst is over
    time.sleep(0.7)
    assert run_pending(app) == 1
    assert seen == [4]


def test_a_limit_reads_back_and_its_key_may_come_from_the_arguments(app: Offload) -> None:
    @app.task(limit=(lambda account: f"api:{account}", 2))
    def call_api(account: str) -> None: ...

    job = call_api.enqueue("acme")
    assert (job.record.limit_key, job.record.limit_max) == ("api:acme", 2)
    stored = app.store.job_get(job.id)
    assert stored is not None and (stored.limit_key, stored.limit_max) == ("api:acme", 2)
    other = call_api.using(limit=("api:shared", 5)).enqueue("acme")
    assert other.refresh().record.limit_key == "api:shared"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"unique_for": 60}, "unique_for needs a unique_key"),
        ({"debounce": 5}, "debounce needs a unique_key"),
        ({"unique_key": "k", "unique_for": 60, "debounce": 5}, "cannot both apply"),
        ({"unique_key": "k", "unique_states": ["succeeded"]}, "set unique_for too"),
        ({"unique_key": "k", "unique_for": 60, "unique_states": ["done"]}, "expected job states"),
        ({"unique_key": "k", "unique_for": 60, "unique_states": "failed"}, "non-empty list"),
        ({"unique_key": "k", "unique_for": -1}, "unique_for to be non-negative seconds"),
        ({"unique_key": "k", "debounce": float("nan")}, "debounce to be non-negative"),
        ({"unique_key": ""}, "unique_key to be a non-empty str"),
        ({"unique_key": "x" * 501}, "at most 500 characters"),
        ({"limit": ("api", 0)}, "between 1 and 1000000"),
        ({"limit": "api"}, r"a \(key, most at once\) pair"),
        ({"limit": ("", 2)}, "limit key to be a non-empty str"),
        ({"limit": ("api", True)}, "between 1 and 1000000"),
    ],
)
def test_bad_key_options_are_refused_naming_the_option(
    app: Offload, options: dict[str, object], message: str
) -> None:
    def plain() -> None: ...

    with pytest.raises(ConfigError, match=message):
        task = app.task(name=f"t{len(app.tasks)}", **options)(plain)  # type: ignore[call-overload]
        task.enqueue()
    assert app.store.job_list(JobFilter()) == []


def test_a_key_function_that_returns_no_string_is_named(app: Offload) -> None:
    @app.task(unique_key=lambda n: n)
    def numbered(n: int) -> None: ...

    with pytest.raises(ConfigError, match=r"task '.*numbered': the unique_key function"):
        numbered.enqueue(3)
    with pytest.raises(ConfigError, match=r"items\[1\]: task"):
        numbered.using(unique_key=lambda n: "k" if n == 1 else n).enqueue_many([(1,), (2,)])
