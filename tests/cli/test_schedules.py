"""``offload schedules`` on a real SQLite file: the app's schedules with their last and
next fires and a human reading, stored-only schedules, JSON output, escaped names."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from offload import Offload
from offload.cli import main
from offload.ids import uuid7
from offload.types import NewJob, ScheduleFire

APP = """
from offload import Offload

app = Offload()

@app.periodic("*/5 * * * *", tz="Europe/Berlin")
@app.task(name="report")
def report() -> None: ...

@app.periodic(every=30, args=("eu",), name="ping-eu", catch_up="all", catch_up_limit=7)
@app.task(name="ping")
def ping(region: str) -> None: ...
"""


@pytest.fixture
def app_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    module = f"sched_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APP))
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{module}:app"


def schedules(url: str, *args: str) -> Result:
    env = {"COLUMNS": "220", "FORCE_COLOR": None, "OFFLOAD_APP": None}
    return CliRunner(env=env).invoke(main, ["schedules", "--url", url, *args])


def record(url: str, name: str, fire_at: int) -> str:
    app = Offload(url)
    try:
        job = NewJob(uuid7(), "ping")
        app.store.schedule_fire([ScheduleFire(name, fire_at, job)])
        return job.id
    finally:
        app.close()


def test_lists_each_schedule_with_its_last_and_next_fire(sqlite_url: str, app_spec: str) -> None:
    last_ping = 1_759_999_980  # October 2025, long ago: overdue
    job = record(sqlite_url, "ping-eu", last_ping)

    result = schedules(sqlite_url, "--app", app_spec)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("store: sqlite:///")
    assert lines[1].split() == [
        "NAME", "SCHEDULE", "MEANING", "LAST", "FIRE", "NEXT", "FIRE", "CATCH-UP", "TASK"
    ]  # fmt: skip
    ping = next(line for line in lines if line.startswith("ping-eu"))
    assert "every 30s" in ping and "every 30 seconds" in ping
    assert "2025-10-09 08:53:00" in ping and "ago)  OVERDUE" in ping
    assert "all (7)" in ping and ping.rstrip().endswith("ping")
    report = next(line for line in lines if line.startswith("report"))
    assert "Every fifth minute of every hour (Europe/Berlin)" in report
    assert "never" in report and "(in " in report and "latest" in report

    rows = [
        json.loads(line)
        for line in schedules(sqlite_url, "--app", app_spec, "--json").output.splitlines()
    ]
    by_name = {r["name"]: r for r in rows}
    assert list(by_name) == ["ping-eu", "report"]
    ping_row = by_name["ping-eu"]
    assert ping_row["last_fire_at"] == last_ping and ping_row["last_job"] == job
    assert ping_row["overdue"] is True and ping_row["args"] == ["eu"]
    assert ping_row["next_fire_at"] % 30 == 0
    assert by_name["report"]["timezone"] == "Europe/Berlin"
    assert by_name["report"]["last_fire_at"] is None and by_name["report"]["overdue"] is False
    assert by_name["report"]["next_fire_at"] % 300 == 0


def test_without_an_app_lists_what_the_store_recorded(sqlite_url: str) -> None:
    record(sqlite_url, "old\x1b[2Jname", 1_800_000_000)

    result = schedules(sqlite_url)

    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "old\\x1b[2Jname" in result.output and "not declared by this app" in result.output
    (row,) = [json.loads(line) for line in schedules(sqlite_url, "--json").output.splitlines()]
    assert row["name"] == "old\x1b[2Jname" and row["in_app"] is False


def test_no_schedules_says_so(sqlite_url: str) -> None:
    result = schedules(sqlite_url)
    assert result.exit_code == 0, result.output
    assert "no schedules (--app lists the app's)" in result.output
