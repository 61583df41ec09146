"""A job whose task no running worker registers stays queued, but not unseen: the worker
names such tasks in its log (``worker.unknown_tasks``), and ``offload jobs show`` says so
of the job."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace
from typing import Any

from click.testing import CliRunner

from offload import JobState, logs
from offload.cli import main
from offload.testing import wait_for
from offload.worker.maintenance.unknown_tasks import UnknownTasks
from tests.worker.conftest import Harness

SMALL = "tests.worker.apps:small_app"  # registers every task of apps.py but `extra`
EXTRA = "tests.worker.apps.extra"


def show(url: str, job_id: str) -> str:
    runner = CliRunner(env={"COLUMNS": "200", "OFFLOAD_APP": None})
    result = runner.invoke(main, ["jobs", "show", job_id, "--url", url])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_worker_names_the_unknown_tasks_with_waiting_jobs_at_start(harness: Harness) -> None:
    lost = harness.task("extra").enqueue()
    later = harness.task("record").using(delay=3600).enqueue(1)  # known: not named
    worker = harness.start("worker", "--concurrency", "1", app=SMALL)

    wait_for(lambda: "event=worker.unknown_tasks" in worker.log(), timeout=20, what="the line")
    (line,) = [ln for ln in worker.log().splitlines() if "event=worker.unknown_tasks" in ln]
    assert "level=warning" in line and "count=1" in line and "jobs=1" in line
    assert re.search(rf'tasks="?{re.escape(EXTRA)}=1"?(\s|$)', line), line
    assert lost.refresh().state is JobState.QUEUED  # kept, never lost

    assert f"no live worker registers task {EXTRA}" in show(harness.url, lost.id)
    assert "no live worker registers" not in show(harness.url, later.id)


def test_jobs_show_says_so_when_no_worker_runs_at_all(harness: Harness) -> None:
    job = harness.task("record").enqueue(1)
    assert "no live worker registers task tests.worker.apps.record" in show(harness.url, job.id)


def test_a_worker_that_registers_the_task_silences_the_note(harness: Harness) -> None:
    job = harness.task("gated").enqueue(str(harness.gate()))
    waiting = harness.task("gated").enqueue(str(harness.gate()))
    harness.start("worker", "--concurrency", "1")
    wait_for(lambda: harness.runs_of(job.id, "start") == 1, timeout=20, what="the job running")
    # The second job waits for the only child: queued, and its task is registered.
    assert waiting.refresh().state is JobState.QUEUED
    assert "no live worker registers" not in show(harness.url, waiting.id)


# -- when a line is written: at start, on a change seen twice, again every ten minutes ---------


class Lines:
    """The duty's decisions, fed what the store would answer, and the lines it logs."""

    def __init__(self) -> None:
        shared: Any = SimpleNamespace(worker_id="w", settings=SimpleNamespace(heartbeat=1.0))
        self.duty = UnknownTasks(shared, check_every=60, repeat_every=600)
        self.out = io.StringIO()

    def look(self, unserved: dict[str, int], at: float) -> list[str]:
        logs.configure(stream=self.out)
        try:
            self.duty._consider(unserved, at)
        finally:
            logs.configure()
        text, self.out = self.out.getvalue(), io.StringIO()
        return text.splitlines()


def test_a_change_is_logged_once_confirmed_and_an_unchanged_set_every_ten_minutes() -> None:
    lines = Lines()
    assert lines.look({}, 0) == []  # nothing unknown at start: no line
    assert lines.look({"a": 2}, 60) == []  # seen once: confirmed first
    (line,) = lines.look({"a": 3}, 62)
    assert "level=warning" in line and 'tasks="a=3"' in line
    assert lines.look({"a": 5}, 122) == []  # same names: not again before ten minutes
    (again,) = lines.look({"a": 5}, 662)
    assert 'tasks="a=5"' in again
    assert lines.look({}, 722) == []
    (cleared,) = lines.look({}, 724)
    assert "level=info" in cleared and "count=0" in cleared
    assert lines.look({}, 1400) == []  # an empty set is not repeated


def test_a_change_not_confirmed_is_not_logged() -> None:
    lines = Lines()
    assert lines.look({"b": 1}, 0) == []
    assert lines.look({}, 2) == []  # the worker that knows b published its names meanwhile
    assert lines.look({}, 62) == []
