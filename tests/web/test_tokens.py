"""Status tokens and the secret setting."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from offload import Offload
from offload.errors import ConfigError
from offload.settings import Settings
from offload.web import tokens

SECRET = "s" * 16


def test_a_token_names_its_job_and_nothing_else_verifies() -> None:
    token = tokens.sign("0190-abc", SECRET)
    assert tokens.verify(token, SECRET) == "0190-abc"
    assert tokens.verify(token, "t" * 16) is None
    payload, mac = token.split(".")
    other = tokens.sign("0190-abd", SECRET).split(".")[0]
    assert tokens.verify(f"{other}.{mac}", SECRET) is None
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    assert tokens.verify(f"{payload}.{flipped}", SECRET) is None
    for junk in ("", ".", "a.b", token + "x", token.replace(".", ""), None, 42, "é" * 60):
        assert tokens.verify(junk, SECRET) is None


def test_a_token_expires() -> None:
    now = time.time()
    token = tokens.sign("job-1", SECRET, dt.timedelta(seconds=60), now=now)
    assert tokens.verify(token, SECRET, now=now + 59) == "job-1"
    assert tokens.verify(token, SECRET, now=now + 61) is None
    for bad in (0, -1, float("nan"), float("inf"), True, "60"):
        with pytest.raises(ConfigError, match="expires_in"):
            tokens.sign("job-1", SECRET, bad)  # type: ignore[arg-type]


def test_status_token_without_a_secret_names_the_setting(sqlite_url: str) -> None:
    app = Offload(sqlite_url)
    try:
        job = app.enqueue_by_name("anything")
        with pytest.raises(ConfigError, match="OFFLOAD_SECRET"):
            job.status_token()
    finally:
        app.close()


def test_the_secret_setting_is_read_checked_and_hidden() -> None:
    settings = Settings.from_env({"OFFLOAD_SECRET": "a-long-enough-secret"})
    assert settings.secret == "a-long-enough-secret"
    assert "a-long-enough-secret" not in repr(settings)
    with pytest.raises(ConfigError, match="secret"):
        Settings(secret="short")


def test_a_job_handle_makes_a_token_for_its_id(sqlite_url: str) -> None:
    app = Offload(sqlite_url, secret=SECRET)
    try:
        job = app.enqueue_by_name("anything")
        assert tokens.verify(job.status_token(expires_in=30), SECRET) == job.id
    finally:
        app.close()
