"""The pieces of autostart on their own: settings, lock folders, wake-up signatures,
listener addresses."""

from __future__ import annotations

import time

import pytest

from offload import ConfigError, Settings
from offload.autostart import locks
from offload.autostart.listener import is_loopback, parse_bind
from offload.autostart.signing import (
    BadWake,
    ReplayGuard,
    Unauthorized,
    check,
    make_body,
    parse,
    sign,
)

SECRET = "a-secret-of-sixteen+"


@pytest.mark.parametrize(
    ("variables", "field", "value"),
    [
        ({"OFFLOAD_AUTOSTART": "spawn"}, "autostart", "spawn"),
        ({"OFFLOAD_AUTOSTART": "ping:http://jobs1:8642,https://jobs2/wake"}, "autostart",
         "ping:http://jobs1:8642,https://jobs2/wake"),
        ({"OFFLOAD_AUTOSTART_APP": "shop.jobs:app"}, "autostart_app", "shop.jobs:app"),
        ({"OFFLOAD_AUTOSTART_LOG": "/var/log/x.log"}, "autostart_log", "/var/log/x.log"),
        ({"OFFLOAD_AUTOSTART_IDLE": "2.5"}, "autostart_idle", 2.5),
        ({"OFFLOAD_WAKE_SECRET": SECRET}, "wake_secret", SECRET),
        ({"OFFLOAD_WAKE_TIMEOUT": "0.25"}, "wake_timeout", 0.25),
    ],
)  # fmt: skip
def test_autostart_settings_are_read_from_the_environment(
    variables: dict[str, str], field: str, value: object
) -> None:
    assert getattr(Settings.from_env(variables), field) == value


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"autostart": "always"}, "autostart"),
        ({"autostart": "ping:"}, "autostart"),
        ({"autostart": "ping:ftp://jobs1"}, "autostart"),
        ({"autostart": "ping:http://jobs1:99999"}, "autostart"),
        ({"autostart_app": "shop.jobs"}, "module:attribute"),
        ({"autostart_idle": 0}, "autostart_idle"),
        ({"wake_timeout": -1}, "wake_timeout"),
        ({"wake_secret": "short"}, "at least 16"),
    ],
)
def test_bad_autostart_settings_are_refused_by_name(changes: dict[str, object], text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        Settings(**changes)  # type: ignore[arg-type]


def test_the_secret_is_not_in_the_settings_repr() -> None:
    assert SECRET not in repr(Settings(wake_secret=SECRET))


def test_a_postgres_lock_folder_ignores_the_password_but_not_the_store() -> None:
    def folder(url: str, schema: str = "offload") -> str:
        return locks.lock_dir(Settings(url=url, schema=schema), create=False)

    base = folder("postgresql://app:one@db:5432/shop")
    assert folder("postgresql://app:two@db:5432/shop") == base
    assert folder("postgresql://app@db:5432/shop?password=three") == base
    assert folder("postgresql://app@db:5432/other") != base
    assert folder("postgresql://app:one@db:5432/shop", schema="jobs") != base
    assert "one" not in base


def test_a_sqlite_lock_folder_is_next_to_the_file(tmp_path: object) -> None:
    folder = locks.lock_dir(Settings(url=f"sqlite:///{tmp_path}/jobs.db"))
    assert folder == f"{tmp_path}/jobs.db.offload"


def test_a_lock_is_seen_held_until_its_holder_lets_go(tmp_path: object) -> None:
    path = f"{tmp_path}/serve.default.lock"
    assert not locks.probe(path)
    held = locks.hold_shared([path])
    also = locks.hold_shared([path])  # shared: many holders
    assert locks.probe(path) and locks.try_exclusive(path) is None
    locks.release(held)
    assert locks.probe(path)
    locks.release(also)
    assert not locks.probe(path)
    fd = locks.try_exclusive(path)
    assert fd is not None
    locks.release([fd])


def test_a_signed_wake_up_passes_once() -> None:
    guard = ReplayGuard()
    body = make_body(["default", "mail", "default"])
    request = check(SECRET, body, sign(SECRET, body), guard, time.time())
    assert request.queues == ("default", "mail")
    with pytest.raises(Unauthorized, match="replayed"):
        check(SECRET, body, sign(SECRET, body), guard, time.time())


@pytest.mark.parametrize(
    ("signature", "text"),
    [(None, "missing"), ("sha256=zz", "malformed"), ("sha256=" + "0" * 64, "bad signature")],
)
def test_a_wrong_signature_is_refused_and_not_remembered(signature: str | None, text: str) -> None:
    guard = ReplayGuard()
    body = make_body(["default"])
    with pytest.raises(Unauthorized, match=text):
        check(SECRET, body, signature, guard, time.time())
    check(SECRET, body, sign(SECRET, body), guard, time.time())  # its nonce is still fresh


@pytest.mark.parametrize("skew", [-31, 31])
def test_a_wake_up_out_of_the_time_window_is_refused(skew: float) -> None:
    body = make_body(["default"], now=time.time() + skew)
    with pytest.raises(Unauthorized, match="stale"):
        check(SECRET, body, sign(SECRET, body), ReplayGuard(), time.time())


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"[]", '"v": 1'),
        (b'{"v": 1, "queues": [], "ts": 1, "nonce": "' + b"a" * 32 + b'"}', "queues"),
        (b'{"v": 1, "queues": ["x"], "ts": "now", "nonce": "' + b"a" * 32 + b'"}', "ts"),
        (b'{"v": 1, "queues": ["x"], "ts": 1, "nonce": "short"}', "nonce"),
        (b'{"v": 1, "queues": ["x"], "ts": NaN, "nonce": "' + b"a" * 32 + b'"}', "ts"),
        (b"\xff", "not JSON"),
    ],
)
def test_a_body_that_is_no_wake_up_is_named(body: bytes, text: str) -> None:
    with pytest.raises(BadWake, match=text):
        parse(body)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 8642)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        (":9000", ("127.0.0.1", 9000)),
        ("[::1]:9000", ("::1", 9000)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_bind_addresses_are_parsed(text: str, expected: tuple[str, int]) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:http", "127.0.0.1:70000", "[::1"])
def test_bad_bind_addresses_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--bind"):
        parse_bind(text)


def test_loopback_is_told_apart() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
