"""``offload ps`` on a real SQLite file, with process rows written through the store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from offload import Offload
from offload.cli import main
from offload.cli import ps as ps_module
from offload.types import ProcessInfo

MIB = 1024 * 1024


@pytest.fixture
def app(sqlite_url: str):
    app = Offload(sqlite_url)
    yield app
    app.close()


def ps(sqlite_url: str, *args: str, heartbeat: str = "5") -> Result:
    """Run ``offload ps`` with a CLI app whose heartbeat is ``heartbeat`` seconds."""
    env = {"COLUMNS": "200", "FORCE_COLOR": None, "OFFLOAD_APP": None}
    env["OFFLOAD_HEARTBEAT"] = heartbeat
    return CliRunner(env=env).invoke(main, ["ps", "--url", sqlite_url, *args])


def pool(app: Offload) -> None:
    now = app.store.now()
    app.store.process_heartbeat(
        [
            ProcessInfo(
                id="sup-1", kind="supervisor", host="web1", pid=100, queues="default,mail",
                started_at=now - 3700, served=12, failed=1, rss=40 * MIB, peak_rss=41 * MIB,
            ),
            ProcessInfo(
                id="child-1", kind="child", host="web1", pid=101, parent_id="sup-1",
                started_at=now - 65, served=7, failed=1, current_job="01abc-job",
                rss=90 * MIB, peak_rss=300 * MIB,
            ),
            ProcessInfo(id="drain-1", kind="drain", host="cron1", pid=555, started_at=now - 5),
        ]
    )  # fmt: skip


def rows_by_pid(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines()[2:]:  # after the store line and the header
        words = line.replace("└", "").split()
        rows[words[2]] = words
    return rows


def test_ps_lists_every_process_with_figures(app, sqlite_url):
    pool(app)
    result = ps(sqlite_url)
    assert result.exit_code == 0, result.output
    _, header, *lines = result.output.splitlines()
    assert header.split()[:5] == ["KIND", "HOST", "PID", "STATUS", "UPTIME"]
    assert [line.split()[0] for line in lines] == ["supervisor", "└", "drain"]  # tree order
    rows = rows_by_pid(result.output)
    assert rows["100"][:8] == ["supervisor", "web1", "100", "running", "1h01m", "12", "1", "40.0"]
    child = rows["101"]
    assert child[3:7] == ["running", "1m05s", "7", "1"]
    assert "01abc-job" in child and "300.0" in child
    assert child[-1] == "100"  # the parent's pid
    assert rows["555"][:4] == ["drain", "cron1", "555", "running"]


def test_ps_marks_processes_without_recent_heartbeat_as_gone(app, sqlite_url):
    pool(app)
    # A CLI configured with a tiny heartbeat sees the rows just written as long silent.
    result = ps(sqlite_url, heartbeat="0.0001")
    assert result.exit_code == 0, result.output
    assert {words[3] for words in rows_by_pid(result.output).values()} == {"gone,"}
    assert "gone, seen " in result.output


def test_stopped_processes_are_hidden_after_a_while_unless_all(app, sqlite_url, monkeypatch):
    pool(app)
    app.store.process_stop(["drain-1"])
    assert rows_by_pid(ps(sqlite_url).output)["555"][3:5] == ["stopped", "0s"]
    monkeypatch.setattr(ps_module, "STOPPED_SHOWN", -1.0)  # every stop is now "long ago"
    assert "555" not in rows_by_pid(ps(sqlite_url).output)
    assert "555" in rows_by_pid(ps(sqlite_url, "--all").output)


def test_ps_json_lines(app, sqlite_url):
    pool(app)
    app.store.process_stop(["drain-1"])
    result = ps(sqlite_url, "--json")
    assert result.exit_code == 0, result.output
    data = {d["id"]: d for d in map(json.loads, result.output.splitlines())}
    assert set(data) == {"sup-1", "child-1", "drain-1"}
    assert data["child-1"]["parent_id"] == "sup-1"
    assert data["child-1"]["peak_rss"] == 300 * MIB
    assert data["child-1"]["status"] == "running"
    assert data["drain-1"]["status"] == "stopped"
    assert data["sup-1"]["info"] == {}
    assert 3699 < data["sup-1"]["uptime"] < 3800


def test_ps_on_an_empty_store(sqlite_url):
    result = ps(sqlite_url)
    assert result.exit_code == 0
    assert result.output.splitlines()[1].startswith("no processes")


def test_ps_on_a_store_that_cannot_open_exits_1(tmp_path):
    result = ps(f"sqlite:///{tmp_path / 'missing' / 'jobs.db'}")
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert "Traceback" not in result.output


def test_tree_order_survives_a_parent_cycle():
    a = ProcessInfo(id="a", kind="child", host="h", pid=1, parent_id="b")
    b = ProcessInfo(id="b", kind="child", host="h", pid=2, parent_id="a")
    assert ps_module.tree_order([a, b]) == [a, b]


def test_a_process_is_judged_by_the_heartbeat_interval_it_published(app, sqlite_url):
    now = app.store.now()
    app.store.process_heartbeat(
        [
            ProcessInfo(id="slow", kind="supervisor", host="h", pid=1, started_at=now,
                        info='{"heartbeat": 30}'),
            ProcessInfo(id="slow-child", kind="child", host="h", pid=2, parent_id="slow"),
            ProcessInfo(id="fast", kind="supervisor", host="h", pid=3, info='{"heartbeat": 1e-6}'),
            ProcessInfo(id="plain", kind="drain", host="h", pid=4),
        ]
    )  # fmt: skip
    # The CLI's own tiny heartbeat would call them all gone; the published ones decide.
    result = ps(sqlite_url, "--json", heartbeat="0.0001")
    status = {d["id"]: d["status"] for d in map(json.loads, result.output.splitlines())}
    assert status == {"slow": "running", "slow-child": "running", "fast": "gone", "plain": "gone"}


def test_ps_names_the_store_it_read(app, sqlite_url, tmp_path):
    pool(app)
    path = sqlite_url.removeprefix("sqlite:///")
    assert ps(sqlite_url).output.splitlines()[0] == f"store: sqlite:///{path}"
    # With nothing in it too: the hint a worker started elsewhere uses another file.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    result = ps(other)
    assert result.output.splitlines() == [
        f"store: sqlite:///{tmp_path / 'other.db'}",
        "no processes (--all lists stopped ones)",
    ]
