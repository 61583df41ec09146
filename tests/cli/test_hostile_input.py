"""The CLI under bad and hostile input: missing or broken apps, absurd arguments and times,
and stored text that tries to talk to the terminal. Each is a clear error with exit 2, or
output that shows the text without obeying it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from offload import JobState, Offload
from offload.cli import main


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "200", "FORCE_COLOR": None, "OFFLOAD_APP": None})


@pytest.mark.parametrize("command", ["worker", "drain"])
def test_running_jobs_without_an_app_exits_2_and_says_how_to_name_it(
    runner: CliRunner, sqlite_url: str, command: str
) -> None:
    result = runner.invoke(main, [command, "--url", sqlite_url])
    assert result.exit_code == 2
    assert "no app given: pass --app module:attribute" in result.output
    assert "OFFLOAD_APP" in result.output


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        ("x = (\n", "broken_mod:app", "importing 'broken_mod' raised SyntaxError"),
        ("raise RuntimeError('boom')\n", "raising_mod:app", "raised RuntimeError: boom (at "),
        ("from offload import Offload\napp = Offload()\n", "typo_mod:ap", "has no attribute 'ap'"),
        ("app = 3\n", "int_mod:app", "int_mod.app is int, not an Offload app"),
    ],
)
def test_a_broken_app_module_exits_2_without_a_traceback(
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    spec: str,
    message: str,
) -> None:
    (tmp_path / f"{spec.split(':')[0]}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = runner.invoke(main, ["drain", "--app", spec, "--url", f"sqlite:///{tmp_path}/j.db"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--args", "[" * 5000 + "]" * 5000], "nests too deeply"),
        (["--args", "[1e999]"], "1e999 is out of range"),
        (["--kwargs", '{"a": -1e999}'], "-1e999 is out of range"),
        (["--args", "[NaN]"], "NaN is not strict JSON"),
        (["--delay", "inf"], "expected delay to be non-negative seconds"),
        (["--delay", "1e300"], "expected delay to be non-negative seconds"),
        (["--delay", "nan"], "expected delay to be non-negative seconds"),
    ],
)
def test_hostile_enqueue_input_exits_2_and_stores_nothing(
    runner: CliRunner, sqlite_url: str, options: list[str], message: str
) -> None:
    result = runner.invoke(main, ["enqueue", "t", *options, "--url", sqlite_url])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert runner.invoke(main, ["jobs", "list", "--url", sqlite_url]).output.strip() == "no jobs"


def test_a_call_that_does_not_bind_to_the_task_exits_2(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bind_app.py").write_text(
        "from offload import Offload\n"
        f"app = Offload('sqlite:///{tmp_path / 'j.db'}')\n"
        "@app.task(name='mail.send')\n"
        "def send(to: str) -> None: ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = runner.invoke(main, ["enqueue", "mail.send", "--app", "bind_app:app"])
    assert result.exit_code == 2
    assert "mail.send(): missing a required argument: 'to'" in result.output


ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r"


def hostile_job(url: str, path: str) -> str:
    app = Offload(url)

    @app.task(name=f"evil{ESCAPES}")
    def evil() -> None: ...

    job_id = evil.enqueue().id
    app.close()
    # Text written by some other program, straight into the row.
    conn = sqlite3.connect(path)
    error = {"type": "E\x1b[1m", "message": f"msg{ESCAPES}", "traceback": f"line1\nline2{ESCAPES}"}
    conn.execute(
        "UPDATE offload_jobs SET state = 'failed', progress_message = ?, error = ?,"
        " run_at = ? WHERE id = ?",
        (f"step{ESCAPES}", json.dumps(error), float("inf"), job_id),
    )
    conn.commit()
    conn.close()
    return job_id


def test_stored_escape_sequences_are_shown_escaped(runner: CliRunner, tmp_path: Path) -> None:
    path = str(tmp_path / "evil.db")
    url = f"sqlite:///{path}"
    job_id = hostile_job(url, path)
    listed = runner.invoke(main, ["jobs", "list", "--url", url])
    shown = runner.invoke(main, ["jobs", "show", job_id, "--url", url])
    for result in (listed, shown):
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\x07" not in result.output
        assert "\r" not in result.output
        assert "\\x1b]0;pwned\\x07" in result.output
    assert "line1\nline2" in shown.output  # a traceback keeps its lines
    assert "not a valid time" in shown.output  # an infinite run_at does not crash the page


def test_json_output_stays_json_for_non_finite_stored_times(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = str(tmp_path / "evil.db")
    url = f"sqlite:///{path}"
    job_id = hostile_job(url, path)
    listed = runner.invoke(main, ["jobs", "list", "--json", "--url", url])
    shown = runner.invoke(main, ["jobs", "show", job_id, "--json", "--url", url])
    for text in (listed.output, shown.output):
        assert "Infinity" not in text
    (row,) = [json.loads(line) for line in listed.output.splitlines()]
    assert row["run_at"] is None and row["state"] == JobState.FAILED.value
    assert json.loads(shown.output)["id"] == job_id
