"""Checked by mypy (tests/typing/test_typing.py): the public API keeps its types."""

from __future__ import annotations

from typing import Any, assert_type

from offload import Job, JobContext, Offload

app = Offload("sqlite:///typing.db")


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task(queue="mail", retries=2)
def send(to: str) -> str:
    return to


@app.task(context=True)
def export(ctx: JobContext, month: str) -> list[str]:
    return [month]


@app.task
async def fetch(url: str) -> bytes:
    return b""


assert_type(add(1, 2), int)
assert_type(add.enqueue(1, 2), Job[int])
assert_type(send.enqueue("x"), Job[str])
assert_type(export.enqueue("2026-11"), Job[list[str]])
assert_type(export.using(delay=5).enqueue("2026-11").result(), list[str])
assert_type(add.enqueue_many([(1, 2)]), list[Job[int]])
assert_type(fetch.enqueue("u"), Job[bytes])
assert_type(fetch.using(queue="web").enqueue("u"), Job[bytes])


@app.task(context=True)
async def crawl(ctx: JobContext, url: str) -> int:
    return 1


assert_type(crawl.enqueue("u"), Job[int])


@app.service("typed-cache", idempotent=True, tick=0.5)
class TypedCache:
    def work(self, request: dict[str, str]) -> str:
        return request["key"]


assert_type(TypedCache, type[TypedCache])
assert_type(app.services["typed-cache"].call({"key": "k"}, timeout=1.0), Any)
assert_type(app.services["typed-cache"].send({"key": "k"}), Job[None] | None)


@app.periodic("*/5 * * * *", tz="Europe/Berlin", args=("all",))
@app.periodic(every=30, args=("eu",), name="report-eu", catch_up="all")
@app.task
def report(region: str) -> int:
    return len(region)


assert_type(report("eu"), int)  # still the task: its signature kept
assert_type(report.enqueue("eu"), Job[int])
