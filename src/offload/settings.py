"""Settings: one frozen dataclass, built from keyword arguments, then ``OFFLOAD_*``
environment variables, then defaults, and validated when it is built.

Durations are seconds (``float``). Every invalid value raises :class:`ConfigError` naming
the key, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from offload.errors import ConfigError, ConfigWarning
from offload.retention import MAX_BATCH, check_seconds, parse_duration

DEFAULT_URL = "sqlite:///offload.db"
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


def check_identifier(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid queue or schema name, else raise ConfigError."""
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ConfigError(
            f"expected {kind} to match {IDENTIFIER.pattern} "
            f"(lowercase letters, digits, underscore; at most 48), got {value!r}"
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Everything an app, its store and its workers are configured with.

    >>> Settings(url="sqlite:///jobs.db", lease=10.0).lease
    10.0
    """

    url: str = DEFAULT_URL
    #: Seconds a claim stays valid without a heartbeat; a dead machine's jobs run again
    #: after at most this long.
    lease: float = 30.0
    #: Seconds between heartbeats (lease renewal, process table, expired-lease rescue).
    heartbeat: float = 5.0
    #: Seconds an idle worker sleeps between polls when no wake-up signal arrives.
    poll_interval: float = 1.0
    #: Largest encoded size of a job's arguments, a result, or one saved value.
    max_payload_bytes: int = 1024 * 1024
    #: SQLite: how long to wait for a lock before retrying (seconds).
    busy_timeout: float = 10.0
    #: SQLite ``PRAGMA synchronous``: NORMAL (default, safe with WAL) or FULL.
    synchronous: str = "NORMAL"
    #: SQLite: refuse new jobs when the disk has fewer free bytes than this.
    min_free_bytes: int = 16 * 1024 * 1024
    #: PostgreSQL schema that holds offload's tables.
    schema: str = "offload"
    #: PostgreSQL connection pool bounds per process.
    pool_min: int = 1
    pool_max: int = 4
    #: PostgreSQL: longest one statement may run or wait for a lock (seconds) before it
    #: fails with StoreUnavailable (0: no limit). Migrations are exempt.
    statement_timeout: float = 30.0
    #: Worker: child processes (default: number of CPUs).
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: Worker: a child exits after a random number of jobs in this range.
    recycle_min: int = 1000
    recycle_max: int = 2000
    #: Worker: recycle a child whose RSS passes this many bytes (None: no cap).
    child_memory_limit: int | None = None
    #: Worker: seconds running jobs get to finish after SIGTERM before they are requeued.
    shutdown_grace: float = 30.0
    #: Seconds between SIGTERM and SIGKILL when a job overruns its timeout.
    kill_grace: float = 5.0
    #: Worker: seconds a running job has to stop by itself once its cancel was asked
    #: (``job.cancel()``); then its child is stopped (SIGTERM, SIGKILL after
    #: ``kill_grace``) and the job ends ``cancelled``. 0 stops it at once.
    cancel_grace: float = 10.0
    #: Worker: most jobs one child is handed at once. Batches are formed only while every
    #: queue the worker serves has recently finished its jobs in well under a millisecond
    #: (1 turns batching off).
    batch_max: int = 32
    #: Worker: the longest a job handed to a child in a batch waits for its turn; past
    #: this it is handed back unstarted (requeued, no attempt used) for any worker to take.
    batch_wait: float = 0.02
    #: A job that crashes its child this many times is quarantined.
    crash_limit: int = 3
    #: How long finished jobs are kept, with their events and messages, after they
    #: finished, by state (seconds; None: for ever; 0: until the next prune). A task's
    #: own ``retention=`` wins for its jobs. See docs/howto/retention.md.
    retention_succeeded: float | None = 7 * 86400.0
    retention_failed: float | None = 30 * 86400.0
    retention_cancelled: float | None = 7 * 86400.0
    retention_quarantined: float | None = 30 * 86400.0
    #: Worker: seconds between prunes of finished jobs past their retention (None: the
    #: workers never prune; ``offload prune`` still does). One worker prunes at a time.
    prune_interval: float | None = 60.0
    #: Most jobs one prune batch deletes, in one short transaction.
    prune_batch: int = 500
    #: Run jobs at once in the enqueuing process (for tests).
    inline: bool = False
    #: Web process: threads that run ``task.after_response(...)`` jobs once the response
    #: is sent (0: never in the web process; workers run them all).
    after_response_threads: int = 2
    #: Web process: most after-response jobs waiting here for a free thread; past it they
    #: are left to the workers (waiting ones are in the store too: nothing is lost).
    after_response_backlog: int = 100
    #: Web process: at exit, seconds its running after-response jobs get to finish
    #: before they are requeued for a worker.
    after_response_grace: float = 5.0
    #: What ``task.after_response(...)`` does in a request when the store refuses the job:
    #: ``log`` (an error line, the task does not run) or ``memory`` (also run it in this
    #: process, without a record).
    after_response_fallback: str = "log"
    #: Start work on enqueue: ``off`` (an external pool or cron runs the jobs), ``spawn``
    #: (start a detached drain on this host when no worker or drain serves the job's
    #: queue), or ``ping:URL[,URL]`` (send a signed wake-up to ``offload wake-listener``).
    autostart: str = "off"
    #: ``module:attribute`` of this app, for the drain that ``spawn`` starts (default:
    #: ``OFFLOAD_APP``).
    autostart_app: str | None = None
    #: File the drains that ``spawn`` starts append their output to (default: next to
    #: the SQLite file, or in a per-user runtime folder for PostgreSQL).
    autostart_log: str | None = None
    #: Seconds a drain that autostart started stays after its queue is empty.
    autostart_idle: float = 10.0
    #: Shared secret that signs wake-ups (``ping:``) and that ``wake-listener`` checks.
    wake_secret: str | None = field(default=None, repr=False)
    #: Seconds a wake-up may take (connect, send, answer) before it is given up.
    wake_timeout: float = 1.0
    #: The host name workers report in the process table (default: the machine's).
    hostname: str | None = None
    #: Key that signs end-user status tokens (``job.status_token()``, checked by
    #: ``offload web``); at least 16 characters. Unset: no status token can be made.
    secret: str | None = field(default=None, repr=False)
    #: Services: where they listen. None: a Unix socket (this machine only); ``HOST`` or
    #: ``HOST:PORT``: TCP on that address (port 0 or none: one chosen per instance). A
    #: non-loopback address needs ``secret``.
    service_bind: str | None = None
    #: Services: the folder of their Unix sockets (default: ``offload-<uid>/services``
    #: under the temporary directory), made with owner-only permissions.
    service_socket_dir: str | None = None
    #: Services: seconds between two calls of a service's ``loop()`` (its ``tick=`` wins).
    service_tick: float = 0.2
    #: Services: seconds ``call()`` waits for a reply unless given ``timeout=``.
    service_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or "://" not in self.url:
            raise ConfigError(f"expected url to look like 'sqlite:///path.db', got {self.url!r}")
        scheme = self.url.split("://", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ConfigError(f"url: unknown scheme {scheme!r}; expected 'sqlite' or 'postgresql'")
        for name in (
            "lease",
            "heartbeat",
            "poll_interval",
            "busy_timeout",
            "kill_grace",
            "batch_wait",
        ):
            _positive(name, getattr(self, name))
        _non_negative("shutdown_grace", self.shutdown_grace)
        _non_negative("cancel_grace", self.cancel_grace)
        _non_negative("statement_timeout", self.statement_timeout)
        _non_negative("after_response_grace", self.after_response_grace)
        _non_negative_int("after_response_threads", self.after_response_threads)
        _non_negative_int("after_response_backlog", self.after_response_backlog)
        if self.after_response_fallback not in ("log", "memory"):
            raise ConfigError(
                "expected after_response_fallback to be 'log' or 'memory', "
                f"got {self.after_response_fallback!r}"
            )
        _positive("autostart_idle", self.autostart_idle)
        _positive("wake_timeout", self.wake_timeout)
        _check_autostart(self)
        if self.heartbeat >= self.lease:
            raise ConfigError(
                f"expected heartbeat ({self.heartbeat}) to be shorter than lease ({self.lease})"
            )
        for name in (
            "retention_succeeded",
            "retention_failed",
            "retention_cancelled",
            "retention_quarantined",
        ):
            # Normalised: a timedelta to seconds, "forever" to None.
            object.__setattr__(self, name, check_seconds(name, getattr(self, name)))
        if self.prune_interval is not None:
            _positive("prune_interval", self.prune_interval)
        if (
            not isinstance(self.prune_batch, int)
            or isinstance(self.prune_batch, bool)
            or not 1 <= self.prune_batch <= MAX_BATCH
        ):
            raise ConfigError(
                f"expected prune_batch to be an int from 1 to {MAX_BATCH}, got {self.prune_batch!r}"
            )
        for name in ("max_payload_bytes", "concurrency", "recycle_min", "crash_limit", "batch_max"):
            _positive_int(name, getattr(self, name))
        _positive_int("pool_max", self.pool_max)
        _non_negative_int("pool_min", self.pool_min)
        _non_negative_int("min_free_bytes", self.min_free_bytes)
        if self.recycle_max < self.recycle_min:
            raise ConfigError(
                f"expected recycle_max >= recycle_min ({self.recycle_min}), "
                f"got {self.recycle_max!r}"
            )
        if self.child_memory_limit is not None:
            _positive_int("child_memory_limit", self.child_memory_limit)
        if self.synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(
                f"expected synchronous to be NORMAL or FULL, got {self.synchronous!r}"
            )
        check_identifier("schema", self.schema)
        if self.hostname is not None and (
            not isinstance(self.hostname, str)
            or not 0 < len(self.hostname) <= 253
            or any(c.isspace() or c == ":" for c in self.hostname)
        ):
            raise ConfigError(
                "expected hostname to be 1-253 characters without spaces or ':', "
                f"got {self.hostname!r}"
            )
        if self.secret is not None and (not isinstance(self.secret, str) or len(self.secret) < 16):
            raise ConfigError("expected secret to be a str of at least 16 characters")
        _positive("service_tick", self.service_tick)
        _positive("service_timeout", self.service_timeout)
        _check_services(self)

    @property
    def scheme(self) -> str:
        """``sqlite`` or ``postgresql``."""
        scheme = self.url.split("://", 1)[0]
        return "postgresql" if scheme == "postgres" else scheme

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``OFFLOAD_<FIELD>`` variables; keyword arguments win.

        >>> Settings.from_env({"OFFLOAD_LEASE": "12"}).lease
        12.0
        """
        environ = os.environ if environ is None else environ
        _warn_misspelled(environ)
        values: dict[str, Any] = {}
        for name, parse in ENV_PARSERS.items():
            key = "OFFLOAD_" + name.upper()
            if key in environ:
                values[name] = parse(key, environ[key])
        unknown = set(overrides) - set(ENV_PARSERS)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


#: ``OFFLOAD_*`` variables that are not settings but are read elsewhere.
#: (``OFFLOAD_TEST_CLOCK_OFFSET`` is test-only: it shifts a process's wall clock as the
#: SQLite store sees it, to test clock steps; see ``store/sqlite/clock.py``.)
#: (``OFFLOAD_WEB_PASSWORD`` is read by ``offload web``: see docs/reference/cli.md.)
OTHER_VARIABLES = frozenset(
    {"OFFLOAD_APP", "OFFLOAD_PG_BIN", "OFFLOAD_TEST_CLOCK_OFFSET", "OFFLOAD_WEB_PASSWORD"}
)


def _warn_misspelled(environ: Mapping[str, str]) -> None:
    """Warn about an ``OFFLOAD_*`` variable that is no setting but close to one
    (``OFFLOAD_ULR``): ignored silently, it would leave the default in force."""
    known = {"OFFLOAD_" + name.upper() for name in ENV_PARSERS} | OTHER_VARIABLES
    # Compared without the shared prefix, which would make every name look close.
    suffixes = [name[len("OFFLOAD_") :] for name in known]
    for key in environ:
        if not key.startswith("OFFLOAD_") or key in known:
            continue
        close = difflib.get_close_matches(key[len("OFFLOAD_") :], suffixes, n=1, cutoff=0.6)
        if close:
            warnings.warn(
                f"{key} is not an offload setting and is ignored; did you mean OFFLOAD_{close[0]}?",
                ConfigWarning,
                stacklevel=3,
            )


# -- parsing OFFLOAD_* text: one explicit parser per setting -------------------------------
def _text(key: str, raw: str) -> str:
    return raw


def _optional_text(key: str, raw: str) -> str | None:
    return None if raw.strip().lower() in ("", "none") else raw


def _number(key: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{key}: expected a float, got {raw!r}") from None


def _integer(key: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{key}: expected an int, got {raw!r}") from None


def _optional_integer(key: str, raw: str) -> int | None:
    return None if raw.strip().lower() in ("", "none") else _integer(key, raw)


def _optional_seconds(key: str, raw: str) -> float | None:
    """Seconds or a duration (``90s``, ``30m``, ``12h``, ``7d``, ``2w``); None for
    ``forever``, ``none`` or nothing."""
    return parse_duration(raw, key)


def _flag(key: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key}: expected a bool, got {raw!r}")


#: How each setting is read from its ``OFFLOAD_<NAME>`` variable (a test checks that every
#: field of :class:`Settings` has one, of the field's type).
ENV_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "url": _text,
    "lease": _number,
    "heartbeat": _number,
    "poll_interval": _number,
    "max_payload_bytes": _integer,
    "busy_timeout": _number,
    "statement_timeout": _number,
    "synchronous": _text,
    "min_free_bytes": _integer,
    "schema": _text,
    "pool_min": _integer,
    "pool_max": _integer,
    "concurrency": _integer,
    "recycle_min": _integer,
    "recycle_max": _integer,
    "child_memory_limit": _optional_integer,
    "shutdown_grace": _number,
    "kill_grace": _number,
    "cancel_grace": _number,
    "batch_max": _integer,
    "batch_wait": _number,
    "crash_limit": _integer,
    "retention_succeeded": _optional_seconds,
    "retention_failed": _optional_seconds,
    "retention_cancelled": _optional_seconds,
    "retention_quarantined": _optional_seconds,
    "prune_interval": _optional_seconds,
    "prune_batch": _integer,
    "inline": _flag,
    "after_response_threads": _integer,
    "after_response_backlog": _integer,
    "after_response_grace": _number,
    "after_response_fallback": _text,
    "autostart": _text,
    "autostart_app": _optional_text,
    "autostart_log": _optional_text,
    "autostart_idle": _number,
    "wake_secret": _optional_text,
    "wake_timeout": _number,
    "hostname": _optional_text,
    "secret": _optional_text,
    "service_bind": _optional_text,
    "service_socket_dir": _optional_text,
    "service_tick": _number,
    "service_timeout": _number,
}


def _check_services(settings: Settings) -> None:
    """``service_bind`` is HOST or HOST:PORT; ``service_socket_dir`` an absolute path."""
    bind = settings.service_bind
    if bind is not None:
        from offload.services.protocol import split_host_port  # only when it is set

        try:
            if not isinstance(bind, str):
                raise ValueError(f"got {bind!r}")
            split_host_port(bind, what="service_bind", default_port=0)
        except ValueError as exc:
            raise ConfigError(f"service_bind: {exc}") from None
    folder = settings.service_socket_dir
    if folder is not None and not (isinstance(folder, str) and os.path.isabs(folder)):
        raise ConfigError(f"expected service_socket_dir to be an absolute path, got {folder!r}")


def _check_autostart(settings: Settings) -> None:
    """``autostart`` is off, spawn or ping:URL[,URL]; ``autostart_app`` module:attribute."""
    mode = settings.autostart
    if not isinstance(mode, str) or not (
        mode in ("off", "spawn") or (mode.startswith("ping:") and _ping_urls(mode))
    ):
        raise ConfigError(
            "expected autostart to be 'off', 'spawn' or 'ping:URL[,URL]' "
            f"(http:// or https:// URLs with a host), got {mode!r}"
        )
    app = settings.autostart_app
    if app is not None and not (
        isinstance(app, str) and re.fullmatch(r"[\w.]+:[\w.]+", app) is not None
    ):
        raise ConfigError(f"expected autostart_app to be 'module:attribute', got {app!r}")
    if settings.wake_secret is not None and (
        not isinstance(settings.wake_secret, str) or len(settings.wake_secret) < 16
    ):
        raise ConfigError("expected wake_secret to be at least 16 characters")


def _ping_urls(mode: str) -> list[str]:
    """The URLs of ``ping:URL[,URL]``; empty if any is not an http(s) URL with a host."""
    from urllib.parse import urlsplit

    urls = [u.strip() for u in mode[len("ping:") :].split(",")]
    for url in urls:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            return []
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return []
    return urls


def _positive(name: str, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"expected {name} to be a positive number of seconds, got {value!r}")


def _non_negative(name: str, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"expected {name} to be a non-negative number, got {value!r}")


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"expected {name} to be a positive int, got {value!r}")


def _non_negative_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"expected {name} to be a non-negative int, got {value!r}")
