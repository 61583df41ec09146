"""``offload jobs ...`` and ``offload enqueue`` on real SQLite files, through click's runner."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from offload import JobContext, JobState, Offload, Settings
from offload.cli import main
from offload.testing import run_pending
from offload.types import ProcessInfo


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "200", "FORCE_COLOR": None, "OFFLOAD_APP": None})


@pytest.fixture
def app(sqlite_url: str):
    app = Offload(sqlite_url)
    yield app
    app.close()


@pytest.fixture
def cli(runner: CliRunner, sqlite_url: str):
    """Run ``offload <args> --url <this test's store>``."""

    def invoke(*args: str) -> Result:
        return runner.invoke(main, [*args, "--url", sqlite_url])

    return invoke


def tasks_on(app: Offload):
    @app.task(context=True, retries=0, name="shop.report")
    def report(ctx: JobContext, n: int) -> dict[str, int]:
        ctx.progress(3, total=4, message="[bold]almost[/bold] there")
        ctx.message("[bold]step[/bold] [1/2] done")
        ctx.save("rows", n)
        if n < 0:
            raise ValueError("n must not be negative")
        return {"n": n}

    return report


def test_list_shows_jobs_newest_first_with_state_progress_and_message(app, cli):
    report = tasks_on(app)
    first, second = report.enqueue(1), report.enqueue(-1)
    run_pending(app)
    result = cli("jobs", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["ID", "TASK", "QUEUE", "STATE"]
    assert lines[1].split()[:4] == [second.id, "shop.report", "default", "failed"]
    assert lines[2].split()[:4] == [first.id, "shop.report", "default", "succeeded"]
    assert "75%" in lines[1]
    # The last line logged is the progress message; store text is not read as markup.
    assert "[bold]step[/bold] [1/2] done" in lines[1]


def test_list_filters_and_pages(app, cli):
    report = tasks_on(app)
    jobs = [report.using(queue="mail" if i % 2 else "default").enqueue(i) for i in range(5)]
    result = cli("jobs", "list", "--queue", "mail", "--json")
    assert [json.loads(line)["id"] for line in result.output.splitlines()] == [
        jobs[3].id,
        jobs[1].id,
    ]
    page = cli("jobs", "list", "--limit", "2")
    assert jobs[4].id in page.output and jobs[2].id not in page.output
    assert f"--before {jobs[3].id}" in page.output
    older = cli("jobs", "list", "--limit", "2", "--before", jobs[3].id, "--json")
    assert [json.loads(line)["id"] for line in older.output.splitlines()] == [
        jobs[2].id,
        jobs[1].id,
    ]
    assert cli("jobs", "list", "--state", "failed").output.strip() == "no jobs"
    assert cli("jobs", "list", "--task", "other.task").output.strip() == "no jobs"


def test_list_json_decodes_payloads(app, cli):
    report = tasks_on(app)
    report.enqueue(7)
    run_pending(app)
    (line,) = cli("jobs", "list", "--state", "succeeded", "--json").output.splitlines()
    data = json.loads(line)
    assert data["state"] == "succeeded"
    assert data["args"] == [7]
    assert data["result"] == {"n": 7}
    assert data["saved"] == {"rows": 7}
    assert data["progress"]["percent"] == 75.0


def test_list_refuses_an_unknown_state_with_usage_exit(cli):
    result = cli("jobs", "list", "--state", "lost")
    assert result.exit_code == 2
    assert "'lost' is not one of" in result.output


def test_show_prints_fields_history_messages_saved_data_and_traceback(app, cli):
    report = tasks_on(app)
    job = report.enqueue(-1)
    run_pending(app)
    result = cli("jobs", "show", job.id)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"job {job.id}" in out
    for text in (
        "shop.report",
        "failed",
        "History",
        "started",
        "Messages",
        "[bold]step[/bold] [1/2] done",
    ):
        assert text in out
    assert '"rows": -1' in out
    assert "75% (3/4)" in out
    assert "1 started; errors 1 (fails at 1); crashes 0" in out
    assert "ValueError: n must not be negative" in out
    assert "Traceback (most recent call last)" in out  # the job's own traceback, as text


def test_show_prints_the_result_of_a_succeeded_job(app, cli):
    report = tasks_on(app)
    job = report.enqueue(5)
    run_pending(app)
    out = cli("jobs", "show", job.id).output
    assert "Result" in out and '"n": 5' in out
    assert "Error" not in out
    data = json.loads(cli("jobs", "show", job.id, "--json").output)
    assert data["result"] == {"n": 5}
    assert [e["kind"] for e in data["events"]] == ["started", "succeeded"]
    assert [m["text"] for m in data["messages"]] == ["[bold]step[/bold] [1/2] done"]


def test_show_of_an_unknown_id_exits_1_without_traceback(cli):
    result = cli("jobs", "show", "nope")
    assert result.exit_code == 1
    assert "no job with id 'nope'" in result.output
    assert "Traceback" not in result.output


def test_retry_requeues_finished_jobs_and_reports_each_id(app, cli):
    report = tasks_on(app)
    failed, waiting = report.enqueue(-1), report.using(delay=60).enqueue(1)
    run_pending(app)
    result = cli("jobs", "retry", failed.id, waiting.id, "missing")
    assert result.exit_code == 1
    assert f"{failed.id}: queued again" in result.output
    assert f"{waiting.id}: not retried: the job is scheduled" in result.output
    assert "missing: no job with id 'missing'" in result.output
    assert failed.refresh().state is JobState.QUEUED
    assert cli("jobs", "retry", failed.id).exit_code == 1  # queued now: nothing to retry


def test_retry_of_finished_jobs_exits_0(app, cli):
    report = tasks_on(app)
    job = report.enqueue(-1)
    run_pending(app)
    result = cli("jobs", "retry", job.id, job.id)
    assert result.exit_code == 0, result.output
    assert result.output.count("queued again") == 1


def test_cancel_waiting_running_and_finished_jobs(app, cli):
    report = tasks_on(app)
    done = report.enqueue(1)
    run_pending(app)
    waiting = report.enqueue(2)
    running = report.enqueue(3)
    app.store.job_claim(
        worker_id="w", queues=["default"], tasks=[report.name], limit=1, lease=30,
        job_ids=[running.id],
    )  # fmt: skip
    result = cli("jobs", "cancel", waiting.id, running.id)
    assert result.exit_code == 0, result.output
    assert f"{waiting.id}: cancelled" in result.output
    assert f"{running.id}: running; asked to stop" in result.output
    assert waiting.refresh().state is JobState.CANCELLED
    assert running.refresh().record.cancel_requested
    refused = cli("jobs", "cancel", done.id, "missing")
    assert refused.exit_code == 1
    assert f"{done.id}: not cancelled: the job has finished (succeeded)" in refused.output
    assert "missing: no job with id 'missing'" in refused.output


def test_delete_removes_jobs_but_not_running_ones(app, cli):
    report = tasks_on(app)
    job = report.enqueue(1)
    run_pending(app)
    running = report.enqueue(2)
    claimed = app.store.job_claim(
        worker_id="w", queues=["default"], tasks=[report.name], limit=1, lease=30
    )
    assert [c.id for c in claimed] == [running.id]
    result = cli("jobs", "delete", job.id, running.id)
    assert result.exit_code == 1
    assert f"{job.id}: deleted" in result.output
    assert f"{running.id}: not deleted: the job is running" in result.output
    assert app.store.job_get(job.id) is None
    assert cli("jobs", "delete", job.id).exit_code == 1


def test_retry_cancel_delete_need_at_least_one_id(cli):
    for command in ("retry", "cancel", "delete"):
        assert cli("jobs", command).exit_code == 2


def test_counts_table_and_json(app, cli):
    report = tasks_on(app)
    report.enqueue(1)
    report.enqueue(-1)
    run_pending(app)
    report.using(queue="mail").enqueue(1)
    report.using(queue="mail", delay=60).enqueue(1)
    result = cli("jobs", "counts")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()}
    assert rows["QUEUE"][:4] == ["SCHEDULED", "QUEUED", "RUNNING", "SUCCEEDED"]
    assert rows["default"] == ["1", "1", "2"]  # succeeded, failed, total
    assert rows["mail"] == ["1", "1", "2"]  # scheduled, queued, total
    assert rows["total"] == ["1", "1", "1", "1", "4"]
    data = json.loads(cli("jobs", "counts", "--json").output)
    assert data == {"default": {"failed": 1, "succeeded": 1}, "mail": {"queued": 1, "scheduled": 1}}


@pytest.mark.counts_unchecked
def test_counts_recount_rebuilds_what_sql_of_ones_own_changed(app, cli, sqlite_url):
    report = tasks_on(app)
    report.enqueue(1)
    conn = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    with conn:
        conn.execute("UPDATE offload_jobs SET queue = 'moved', state = 'succeeded'")
    conn.close()
    assert json.loads(cli("jobs", "counts", "--json").output) == {}
    data = json.loads(cli("jobs", "counts", "--recount", "--json").output)
    assert data == {"moved": {"succeeded": 1}}


def test_counts_of_an_empty_store(cli):
    result = cli("jobs", "counts")
    assert result.exit_code == 0
    assert result.output.strip() == "no jobs"


def test_enqueue_by_name_for_a_task_the_cli_does_not_know(app, cli):
    result = cli("enqueue", "billing.invoice", "--args", "[1, 2]", "--kwargs", '{"to": "ada"}')
    assert result.exit_code == 0, result.output
    job = app.get_job(result.stdout.strip())
    assert (job.task_name, job.queue, job.state) == ("billing.invoice", "default", JobState.QUEUED)
    assert (job.args, job.kwargs) == ([1, 2], {"to": "ada"})


def test_enqueue_with_queue_and_delay(app, cli):
    result = cli("enqueue", "billing.invoice", "--queue", "mail", "--delay", "120")
    assert result.exit_code == 0, result.output
    assert "not registered in any app given here (no --app)" in result.stderr
    job = app.get_job(result.stdout.strip())
    assert (job.queue, job.state) == ("mail", JobState.SCHEDULED)
    assert 110 < (job.run_at - job.created_at).total_seconds() <= 121


def test_enqueue_a_registered_task_uses_its_options(tmp_path, runner, monkeypatch):
    (tmp_path / "cli_shop.py").write_text(
        "from offload import Offload\n"
        f"app = Offload('sqlite:///{tmp_path / 'shop.db'}')\n"
        "@app.task(queue='media', retries=7, name='shop.resize')\n"
        "def resize(image_id: int) -> int:\n"
        "    return image_id\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = runner.invoke(
        main, ["enqueue", "shop.resize", "--args", "[3]", "--app", "cli_shop:app"]
    )
    assert result.exit_code == 0, result.output
    from cli_shop import app  # type: ignore[import-not-found]

    job = app.get_job(result.output.strip())
    assert (job.queue, job.record.max_attempts) == ("media", 8)
    delayed = runner.invoke(
        main,
        [
            *("enqueue", "shop.resize", "--app", "cli_shop:app", "--args", "[4]"),
            *("--delay", "5", "--queue", "x"),
        ],
    )
    job = app.get_job(delayed.output.strip())
    assert (job.queue, job.record.max_attempts, job.state) == ("x", 8, JobState.SCHEDULED)
    app.close()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--args", "[1,"], "--args: not valid JSON"),
        (["--args", '{"a": 1}'], "--args: expected a JSON array, got object"),
        (["--kwargs", "[1]"], "--kwargs: expected a JSON object, got array"),
        (["--args", "[NaN]"], "--args: not valid JSON: NaN is not strict JSON"),
        (["--queue", "Bad Queue"], "expected queue to match"),
        (["--delay", "-1"], "--delay"),
    ],
)
def test_enqueue_refuses_bad_input_with_usage_exit(app, cli, args, problem):
    result = cli("enqueue", "billing.invoice", *args)
    assert result.exit_code == 2
    assert problem in result.output.replace("'", "")
    assert "Traceback" not in result.output
    assert app.store.job_counts() == {}


def test_a_store_that_cannot_open_exits_1_without_traceback(runner, tmp_path):
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    result = runner.invoke(main, ["jobs", "list", "--url", url])
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


def test_a_bad_url_is_a_usage_error(runner):
    result = runner.invoke(main, ["jobs", "counts", "--url", "mysql://db"])
    assert result.exit_code == 2
    assert "unknown scheme 'mysql'" in result.output


def test_jobs_list_in_a_real_process(app, sqlite_url):
    report = tasks_on(app)
    job = report.enqueue(1)
    env = {**os.environ, "OFFLOAD_URL": sqlite_url, "COLUMNS": "200"}
    env.pop("OFFLOAD_APP", None)
    proc = subprocess.run(
        [sys.executable, "-m", "offload", "jobs", "list", "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"] == job.id
    missing = subprocess.run(
        [sys.executable, "-m", "offload", "jobs", "show", "nope"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr == "error: no job with id 'nope'\n"


def test_import_offload_does_not_import_click_or_rich():
    code = "import sys, offload; print(sorted({'click', 'rich'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_the_visibility_commands_on_both_backends(runner, store_url):
    """One pass over every command, on SQLite and on PostgreSQL."""
    app = Offload(store_url)
    report = tasks_on(app)

    def cli(*args: str) -> Result:
        return runner.invoke(main, [*args, "--url", store_url])

    try:
        job_id = report.enqueue(-1).id  # the CLI's bare app would use default retries
        waiting_id = cli("enqueue", "shop.report", "--args", "[1]", "--delay", "60").stdout.strip()
        run_pending(app)
        assert app.get_job(job_id).state is JobState.FAILED
        listed = [
            json.loads(line)["id"] for line in cli("jobs", "list", "--json").output.splitlines()
        ]
        assert listed == [waiting_id, job_id]
        shown = cli("jobs", "show", job_id)
        assert (
            "n must not be negative" in shown.output
            and "[bold]step[/bold] [1/2] done" in shown.output
        )
        assert json.loads(cli("jobs", "counts", "--json").output) == {
            "default": {"failed": 1, "scheduled": 1}
        }
        assert cli("jobs", "retry", job_id).exit_code == 0
        assert cli("jobs", "cancel", waiting_id, job_id).exit_code == 0
        assert cli("jobs", "delete", waiting_id, job_id).exit_code == 0
        assert cli("jobs", "show", job_id).exit_code == 1
        app.store.process_heartbeat([ProcessInfo(id="d", kind="drain", host="h", pid=9)])
        assert json.loads(cli("ps", "--json").output)["status"] == "running"
    finally:
        app.close()


# -- the reference docs stay true to the code -------------------------------------------------
DOCS = Path(__file__).resolve().parents[2] / "docs" / "reference"


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(main)
    out: dict[str, click.Command] = {}
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                out[f"{name} {sub}"] = command.get_command(ctx, sub)  # type: ignore[assignment]
        else:
            out[name] = command
    return out


def test_cli_reference_documents_every_command_and_option_and_nothing_else():
    text = (DOCS / "cli.md").read_text()
    sections = dict(
        (m.group(1), m.group(2))
        for m in re.finditer(r"^## offload ([a-z -]+)\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    )
    commands = _commands()
    assert set(sections) == set(commands)
    for name, command in commands.items():
        options = {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts} - {
            "--app",
            "--url",
        }
        documented = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", sections[name]))
        documented -= {"--app", "--url"}
        long_options = {o for o in options if o.startswith("--")}
        assert long_options <= documented, (name, long_options - documented)
        assert documented <= long_options, (name, documented - long_options)


def test_settings_reference_documents_every_setting_with_its_variable():
    text = (DOCS / "settings.md").read_text()
    rows = set(re.findall(r"^\| `([a-z_]+)` \| `(OFFLOAD_[A-Z_]+)` \|", text, re.M))
    fields = {(f.name, "OFFLOAD_" + f.name.upper()) for f in dataclasses.fields(Settings)}
    assert rows == fields


def test_errors_reference_documents_every_exception():
    import inspect

    from offload import errors

    text = (DOCS / "errors.md").read_text()
    documented = set(re.findall(r"\*\*`([A-Za-z]+)[`(]", text))
    defined = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, Exception)
        and value.__module__ == errors.__name__
    }
    assert documented == defined


def test_list_on_a_narrow_terminal_keeps_ids_whole(app, sqlite_url):
    report = tasks_on(app)
    job = report.enqueue(1)
    narrow = CliRunner(env={"COLUMNS": "90", "FORCE_COLOR": None, "OFFLOAD_APP": None})
    result = narrow.invoke(main, ["jobs", "list", "--url", sqlite_url])
    header, row = result.output.splitlines()[:2]
    assert header.split() == ["ID", "TASK", "QUEUE", "STATE", "ATTEMPTS", "AGE"]
    assert row.split()[0] == job.id
