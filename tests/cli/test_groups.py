"""``offload groups`` and ``offload groups show`` on a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from offload import Offload
from offload.cli import main
from offload.testing import run_pending


@pytest.fixture
def app(sqlite_url: str) -> Iterator[Offload]:
    app = Offload(sqlite_url)
    yield app
    app.close()


def _cli(sqlite_url: str, *args: str) -> Result:
    runner = CliRunner(env={"COLUMNS": "200", "FORCE_COLOR": None, "OFFLOAD_APP": None})
    return runner.invoke(main, [*args, "--url", sqlite_url])


def test_groups_lists_progress_and_json(app: Offload, sqlite_url: str) -> None:
    @app.task(name="one", retries=0)
    def one(x: int) -> int:
        if x < 0:
            raise ValueError(x)
        return x

    with app.group(name="nightly-import") as g:
        g.add_many(one, [(1,), (-1,), (2,)])
    run_pending(app, max_jobs=2)
    result = _cli(sqlite_url, "groups")
    assert result.exit_code == 0, result.output
    assert "nightly-import" in result.output and "2/3" in result.output
    assert "sealed" in result.output
    result = _cli(sqlite_url, "groups", "list", "--json")
    (line,) = result.output.splitlines()
    data = json.loads(line)
    assert (data["id"], data["state"], data["done"], data["total"]) == (g.id, "sealed", 2, 3)
    run_pending(app)
    shown = _cli(sqlite_url, "groups", "show", g.id)
    assert shown.exit_code == 0, shown.output
    assert "complete" in shown.output and "3/3 done" in shown.output
    data = json.loads(_cli(sqlite_url, "groups", "show", g.id, "--json").output)
    assert (data["succeeded"], data["failed"]) == (2, 1)


def test_groups_show_names_a_missing_group(app: Offload, sqlite_url: str) -> None:
    app.migrate()
    result = _cli(sqlite_url, "groups", "show", "nope")
    assert result.exit_code == 1
    assert "no group with id 'nope'" in result.output
    assert "no groups" in _cli(sqlite_url, "groups").output
