"""The fault suite's harness: a store, a ledger, worker processes, and the oracle that
judges a scenario (lost, duplicated and phantom jobs, store integrity) and records its
figure line."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from offload.store.sqlite import SQLiteStore
from offload.types import TERMINAL_STATES
from tests.faults import apps
from tests.fixtures import processes

#: Figure lines of this session, printed in the terminal summary (see conftest.py).
FIGURES: list[str] = []

VALID_STATES = ("queued", "running", *TERMINAL_STATES)
APP = "tests.faults.apps:app"


def figure(scenario: str, store: str, **values: Any) -> str:
    """Record one ``FAULTS scenario=... store=... k=v`` line for the session summary."""
    parts = [f"scenario={scenario}", f"store={store}"]
    for key, value in values.items():
        parts.append(f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}")
    line = "FAULTS " + " ".join(parts)
    FIGURES.append(line)
    return line


@dataclass
class Verdict:
    """What the oracle found after a scenario."""

    jobs: int
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    #: Duplicates outside the allowed set, or whose extra completion the store accepted.
    bad_duplicates: list[str] = field(default_factory=list)
    phantoms: list[str] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)
    refused: int = 0
    #: Ledger rows and store events of a few bad jobs, for the failure message.
    details: dict[str, list[Any]] = field(default_factory=dict)

    def assert_clean(self) -> None:
        assert not self.lost, f"{len(self.lost)} lost jobs, e.g. {self.details}"
        assert not self.bad_duplicates, f"unexplained duplicates: {self.details}"
        assert not self.phantoms, f"phantom jobs in the ledger: {self.phantoms[:5]}"
        assert not self.integrity, f"store integrity: {self.integrity}"


class FaultHarness:
    """A store on ``url``, a ledger file, and the worker processes of one scenario."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp = tmp_path
        self.url = url
        self.backend = "sqlite" if url.startswith("sqlite") else "postgres"
        self.ledger = tmp_path / "ledger.db"
        self.procs: list[processes.WorkerProcess] = []
        self.app = apps.app
        for app in (apps.app, apps.small_app):
            app.settings = app.settings.replace(url=url, lease=5.0, heartbeat=1.0)
            app.close()
        self.app.migrate()
        apps.create_ledger(str(self.ledger))

    def task(self, name: str) -> Any:
        return self.app.tasks[f"tests.faults.apps.{name}"]

    # -- processes -------------------------------------------------------------------------
    def start(self, *args: str, app: str = APP, **settings: Any) -> processes.WorkerProcess:
        """Start ``offload worker`` with the suite's short timings (overridable)."""
        log = self.tmp / f"worker-{len(self.procs)}.log"
        proc = processes.start("worker", self.url, self.ledger, log, app=app, args=args, **settings)
        self.procs.append(proc)
        return proc

    def children(self, worker: processes.WorkerProcess) -> list[int]:
        """Pids of the worker's live child processes."""
        try:
            kids = psutil.Process(worker.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [k.pid for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]

    def close(self) -> None:
        for proc in self.procs:
            for pid in self.children(proc):
                kill(pid)
            proc.kill()
        for app in (apps.app, apps.small_app):
            app.close()

    # -- the ledger -------------------------------------------------------------------------
    def rows(self, phase: str | None = None) -> list[tuple[str, int, int, str]]:
        return processes.ledger_rows(self.ledger, phase)

    def ledger_count(self, phase: str = "done") -> int:
        if not self.ledger.exists():
            return 0
        conn = sqlite3.connect(self.ledger, timeout=30)
        try:
            return int(
                conn.execute("SELECT count(*) FROM runs WHERE phase = ?", (phase,)).fetchone()[0]
            )
        except sqlite3.OperationalError:
            return 0  # no table yet
        finally:
            conn.close()

    def runs_of_started(self, jobs: Iterable[Any]) -> int:
        """How many of these jobs (handles) have at least one ``start`` row."""
        started = {r[0] for r in self.rows("start")}
        return sum(1 for j in jobs if j.id in started)

    # -- the store, by SQL -------------------------------------------------------------------
    def table(self, name: str) -> str:
        return f"offload_{name}" if self.backend == "sqlite" else f"offload.{name}"

    def sql(self, query: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the store under test (``{jobs}``, ``{events}`` expand)."""
        query = query.format(jobs=self.table("jobs"), events=self.table("events"))
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
            try:
                cur = conn.execute(query.replace("%s", "?"), tuple(params))
                rows = cur.fetchall()
                conn.commit()
                return rows
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as pg:
            cur = pg.execute(query.encode(), tuple(params))  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def states(self, ids: Collection[str] | None = None) -> Counter[str]:
        rows = self.sql("SELECT id, state FROM {jobs}")
        wanted = set(ids) if ids is not None else None
        return Counter(s for i, s in rows if wanted is None or i in wanted)

    def done_count(self, ids: Collection[str] | None = None) -> int:
        if ids is None:
            return int(self.sql("SELECT count(*) FROM {jobs} WHERE state = 'succeeded'")[0][0])
        return self.states(ids)["succeeded"]

    def lease_lost(self) -> set[str]:
        """Jobs whose lease ran out or whose outcome was refused as stale at least once."""
        rows = self.sql("SELECT job_id FROM {events} WHERE kind IN ('lease_expired', 'refused')")
        return {r[0] for r in rows}

    def history(self, job_id: str) -> list[tuple[Any, ...]]:
        """A job's events, for failure messages."""
        return self.sql(
            "SELECT attempt, kind, worker_id, message FROM {events} WHERE job_id = %s ORDER BY seq",
            (job_id,),
        )

    # -- the oracle ---------------------------------------------------------------------------
    def verify(
        self,
        enqueued: Collection[str],
        *,
        may_repeat: Collection[str] = (),
        attempted: Collection[str] = (),
        expect: str = "succeeded",
        ending: Mapping[str, str] | None = None,
    ) -> Verdict:
        """Judge the scenario: every ``enqueued`` job ended ``expect`` and completed once.

        A job may have completed more than once only if it is in ``may_repeat`` (its
        process died or its lease was lost), and then the store must have accepted exactly
        one completion. ``attempted`` ids (enqueues that raised) may appear in the ledger
        without being phantoms. ``ending`` names jobs expected to end otherwise (failed,
        quarantined): they count as enqueued, must be in that state, and never completed.
        """
        ending = dict(ending or {})
        enqueued = set(enqueued) | set(ending)
        done = Counter(row[0] for row in self.rows("done"))
        seen = {row[0] for row in self.rows()}
        records = {r[0]: (r[1], r[2]) for r in self.sql("SELECT id, state, attempt FROM {jobs}")}
        accepted = Counter(
            r[0] for r in self.sql("SELECT job_id FROM {events} WHERE kind = 'succeeded'")
        )
        refused = int(self.sql("SELECT count(*) FROM {events} WHERE kind = 'refused'")[0][0])
        verdict = Verdict(jobs=len(enqueued), refused=refused)
        for job_id in enqueued:
            state = records.get(job_id, ("missing", 0))[0]
            wanted = ending.get(job_id, expect)
            if state != wanted or (wanted == "succeeded") != (done[job_id] > 0):
                verdict.lost.append(job_id)
        attempts: dict[str, set[int]] = defaultdict(set)
        for job_id, attempt, _pid, _phase in self.rows("done"):
            attempts[job_id].add(attempt)
        for job_id, count in done.items():
            if count <= 1:
                continue
            verdict.duplicates.append(job_id)
            final_attempt = records.get(job_id, ("", -1))[1]
            if (
                job_id not in may_repeat
                or accepted[job_id] != 1
                or final_attempt not in attempts[job_id]
            ):
                verdict.bad_duplicates.append(job_id)
        for job_id, count in accepted.items():
            if count > 1 and job_id not in verdict.bad_duplicates:
                verdict.bad_duplicates.append(job_id)  # two completions accepted
        verdict.phantoms = sorted(seen - enqueued - set(attempted))
        verdict.details = {
            job_id: [row for row in self.rows() if row[0] == job_id] + self.history(job_id)
            for job_id in verdict.bad_duplicates[:3] + verdict.lost[:3]
        }
        verdict.integrity = self.integrity()
        return verdict

    def integrity(self) -> list[str]:
        """Problems with the store's rows (empty: sound)."""
        problems = []
        if self.backend == "sqlite":
            store = SQLiteStore(self.app.settings)
            try:
                result = store.integrity_check()
            finally:
                store.close()
            if result != "ok":
                problems.append(f"PRAGMA integrity_check: {result}")
        marks = ", ".join(f"'{s}'" for s in VALID_STATES)
        terminal = ", ".join(f"'{s}'" for s in TERMINAL_STATES)
        checks = {
            "rows in no valid state": f"SELECT count(*) FROM {{jobs}} WHERE state NOT IN ({marks})",
            "running rows without a lease": "SELECT count(*) FROM {jobs} WHERE state = 'running'"
            " AND (leased_until IS NULL OR worker_id IS NULL)",
            "finished rows without finished_at": "SELECT count(*) FROM {jobs}"
            f" WHERE state IN ({terminal}) AND finished_at IS NULL",
            "rows not running that hold a lease": "SELECT count(*) FROM {jobs}"
            " WHERE state <> 'running' AND leased_until IS NOT NULL",
        }
        for what, query in checks.items():
            count = int(self.sql(query)[0][0])
            if count:
                problems.append(f"{count} {what}")
        return problems


def kill(pid: int, signum: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def elapsed(since: float) -> float:
    return time.monotonic() - since
