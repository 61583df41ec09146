"""What enqueue refuses and what it tells: bad calls, bad times, deep values, duplicates,
threads racing to open the store, and the async API."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest

from offload import ConfigError, JobState, Offload, SerializationError
from offload.serialization import MAX_DEPTH, loads
from offload.types import JobFilter
from tests.fixtures.postgres import store_settings


@pytest.fixture
def app(store_url: str) -> Iterator[Offload]:
    app = Offload(settings=store_settings(store_url))
    yield app
    app.close()


def stored(app: Offload) -> int:
    return len(app.store.job_list(JobFilter(limit=1000)))


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


# -- calls that cannot bind fail at enqueue, as Celery's do -------------------------------
def test_a_call_that_does_not_bind_raises_type_error_and_stores_nothing(app: Offload) -> None:
    @app.task(context=True, name="shop.export")
    def export(ctx: object, month: str, *, fmt: str = "csv") -> None: ...

    for call, message in [
        (lambda: export.enqueue(), "shop.export(): missing a required argument: 'month'"),
        (lambda: export.enqueue("11", "12"), "too many positional arguments"),
        (lambda: export.enqueue("11", style="x"), "unexpected keyword argument 'style'"),
        (lambda: export.delay(), "missing a required argument"),
    ]:
        with pytest.raises(TypeError, match=re.escape(message)):
            call()  # type: ignore[no-untyped-call]
    with pytest.raises(TypeError, match=r"items\[1\]: shop.export\(\): missing"):
        export.enqueue_many([("11",), {"fmt": "pdf"}])
    assert stored(app) == 0
    assert export.enqueue("11", fmt="pdf").kwargs == {"fmt": "pdf"}
    assert export.delay("12").args == ["12"]


# -- times: finite and in range wherever they enter ----------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"delay": math.inf},
        {"delay": math.nan},
        {"delay": 1e300},
        {"run_at": math.nan},
        {"run_at": math.inf},
        {"run_at": -1.0},
        {"run_at": 1e300},
        {"timeout": math.inf},
        {"backoff": math.inf},
        {"backoff": [1.0, math.nan]},
    ],
)
def test_non_finite_and_out_of_range_times_are_refused(
    app: Offload, changes: dict[str, object]
) -> None:
    @app.task
    def ping() -> None: ...

    with pytest.raises(ConfigError, match=next(iter(changes))):
        ping.using(**changes).enqueue()  # type: ignore[arg-type]
    assert stored(app) == 0


# -- values nested too deep: a clear error, not a RecursionError ---------------------------
def test_deep_arguments_raise_serialization_error(app: Offload) -> None:
    @app.task
    def take(value: object) -> None: ...

    with pytest.raises(SerializationError, match=f"nests deeper than {MAX_DEPTH} levels"):
        take.enqueue(nested(5000))
    with pytest.raises(SerializationError, match="nests too deeply"):
        loads("[" * 100_000 + "]" * 100_000)
    assert stored(app) == 0


def test_a_task_returning_a_too_deep_value_fails_at_once(tmp_path: object) -> None:
    app = Offload(f"sqlite:///{tmp_path}/inline.db", inline=True)

    @app.task(retries=3)
    def deep() -> object:
        return nested(5000)

    job = deep.enqueue()
    assert (job.state, job.attempts) == (JobState.FAILED, 1)
    assert "nests deeper than" in job.error["message"]  # type: ignore[index]
    app.close()


# -- unique keys: the handle says it was deduplicated --------------------------------------
def test_a_deduplicated_enqueue_says_so(app: Offload) -> None:
    @app.task
    def refresh(feed: int) -> None: ...

    first = refresh.using(unique_key="feed").enqueue(1)
    again = refresh.using(unique_key="feed").enqueue(2)
    (bulk,) = refresh.using(unique_key="feed").enqueue_many([(3,)])
    assert not first.deduplicated
    assert again.deduplicated and again.id == first.id and again.args == [1]
    assert bulk.deduplicated and bulk.id == first.id
    assert not refresh.using(unique_key="other").enqueue(4).deduplicated


# -- many threads, first enqueue at once: one store per process ----------------------------
def test_threads_racing_to_the_first_enqueue_share_one_store(store_url: str) -> None:
    app = Offload(settings=store_settings(store_url))

    @app.task
    def hit(n: int) -> None: ...

    barrier = threading.Barrier(32)
    stores: list[int] = []

    def first_enqueue(n: int) -> None:
        barrier.wait()
        hit.enqueue(n)
        stores.append(id(app.store))

    threads = [threading.Thread(target=first_enqueue, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stores) == 32 and len(set(stores)) == 1
    assert stored(app) == 32
    app.close()


# -- the async API does not block the event loop -------------------------------------------
def test_aenqueue_lets_the_event_loop_run_while_the_store_is_locked(tmp_path: object) -> None:
    path = f"{tmp_path}/locked.db"
    app = Offload(f"sqlite:///{path}", busy_timeout=5.0)

    @app.task
    def note(n: int) -> None: ...

    app.migrate()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.6, holder.rollback)
    release.start()

    async def main() -> tuple[int, str]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        job = await note.aenqueue(1)
        tick_task.cancel()
        return ticks, job.id

    began = time.monotonic()
    ticks, job_id = asyncio.run(main())
    assert time.monotonic() - began >= 0.5  # the enqueue did wait for the lock
    assert ticks >= 20  # ...while the loop went on
    assert app.get_job(job_id).state is JobState.QUEUED
    release.join()
    holder.close()
    app.close()


def test_await_result_and_arefresh(tmp_path: object) -> None:
    app = Offload(f"sqlite:///{tmp_path}/inline.db", inline=True)

    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    async def main() -> tuple[int, JobState, int]:
        job = await add.aenqueue(2, 3)
        (other,) = await add.aenqueue_many([(4, 5)])
        refreshed = await job.arefresh()
        return await job.await_result(timeout=5), refreshed.state, await other.await_result()

    assert asyncio.run(main()) == (5, JobState.SUCCEEDED, 9)
    app.close()


def test_await_finished_times_out(app: Offload) -> None:
    @app.task
    def later() -> None: ...

    job = later.using(delay=60).enqueue()
    with pytest.raises(TimeoutError, match=r"still scheduled after waiting 0\.05 s"):
        asyncio.run(job.await_finished(timeout=0.05))
    assert job.run_at > dt.datetime.now(dt.UTC)
