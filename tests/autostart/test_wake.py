"""Waking job servers: ``offload wake-listener`` starts a drain for a good signed wake-up,
refuses forged, unsigned, stale and replayed ones (401, nothing started) and a public
address without a secret; ``autostart="ping:URL"`` wakes it after an enqueue, and a server
that is down or silent never blocks or fails the enqueue."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from offload import JobState
from offload.autostart import _hooks
from offload.autostart.ping import Pinger
from offload.autostart.signing import SIGNATURE_HEADER, make_body, sign
from offload.testing import wait_for
from tests.autostart.conftest import Host

SECRET = "s3cret-for-the-tests-only"


class Listener:
    def __init__(self, host: Host, *args: str, secret: str | None = SECRET) -> None:
        settings = {"wake_secret": secret} if secret else {}
        self.proc = host.offload("wake-listener", "--bind", "127.0.0.1:0", *args, **settings)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on" in line, line + self.proc.communicate(timeout=30)[1]
        self.url = line.split("listening on ", 1)[1].split()[0]

    def post(self, body: bytes, signature: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        return httpx.post(self.url, content=body, headers=headers, timeout=30)


@pytest.fixture
def listener(host: Host) -> Iterator[Listener]:
    yield Listener(host)


def test_forged_and_replayed_wake_ups_are_refused_and_a_good_one_starts_a_drain(
    host: Host, listener: Listener
) -> None:
    job = host.app.enqueue_by_name("record", ["waiting"])
    body = make_body(["default"])

    # Forged (another secret), unsigned, tampered and stale: 401, nothing started
    forged = listener.post(body, sign("not-the-secret-at-all", body))
    unsigned = listener.post(body, None)
    tampered = listener.post(body.replace(b"default", b"mail"), sign(SECRET, body))
    stale = make_body(["default"], now=time.time() - 120)
    old = listener.post(stale, sign(SECRET, stale))
    for response, why in [
        (forged, "bad signature"), (unsigned, "missing"), (tampered, "bad signature"),
        (old, "stale"),
    ]:  # fmt: skip
        assert response.status_code == 401, response.text
        assert why in response.json()["error"]
    assert not host.live() and not host.serving()

    # A good one starts a drain, which runs the waiting job
    good = listener.post(body, sign(SECRET, body))
    assert good.status_code == 202, good.text
    assert good.json()["started"] == ["default"]
    assert host.app.get_job(job.id).wait(timeout=60).state is JobState.SUCCEEDED
    wait_for(lambda: host.live("drain"), timeout=30, what="the drain's pid file")

    # The same one again: replayed, refused, nothing more started
    replay = listener.post(body, sign(SECRET, body))
    assert replay.status_code == 401 and "replayed" in replay.json()["error"]
    assert len(host.live("drain")) == 1
    assert len(host.events("worker.started", kind="drain")) == 1

    # A fresh good one while the drain runs: alive, nothing started
    again = make_body(["default", "nosuchqueue"])
    answer = listener.post(again, sign(SECRET, again))
    assert answer.status_code == 202
    assert answer.json()["alive"] == ["default"] and answer.json()["started"] == []
    assert answer.json()["ignored"] == ["nosuchqueue"]


def test_malformed_wake_ups_get_a_clear_error(sqlite_host: Host) -> None:
    listener = Listener(sqlite_host)
    cases = [
        (b"not json", 400, "not JSON"),
        (b'{"v": 1, "queues": ["Bad Name"], "ts": 1, "nonce": "' + b"a" * 32 + b'"}', 400, "queue"),
        (b'{"v": 2}', 400, '"v": 1'),
    ]
    for body, status, text in cases:
        response = listener.post(body, sign(SECRET, body))
        assert response.status_code == status and text in response.json()["error"], response.text
    assert httpx.get(listener.url, timeout=30).status_code == 405
    wrong = httpx.post(listener.url.replace("/wake", "/other"), content=b"{}", timeout=30)
    assert wrong.status_code == 404
    too_big = listener.post(b"x" * 5000, None)
    assert too_big.status_code == 413
    assert not sqlite_host.live()


def test_a_listener_refuses_a_public_address_without_a_secret(sqlite_host: Host) -> None:
    proc = sqlite_host.offload("wake-listener", "--bind", "0.0.0.0:0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    assert "without a secret" in err and "OFFLOAD_WAKE_SECRET" in err


def test_a_loopback_listener_without_a_secret_takes_unsigned_wake_ups(sqlite_host: Host) -> None:
    listener = Listener(sqlite_host, secret=None)
    body = make_body(["mail"])
    response = listener.post(body, None)
    assert response.status_code == 202 and response.json()["started"] == ["mail"]
    assert listener.post(body, None).status_code == 401  # replays are still refused


def test_ping_wakes_a_listener_that_starts_a_drain(host: Host, listener: Listener) -> None:
    app = host.enqueuing_app(autostart=f"ping:{listener.url}", wake_secret=SECRET)
    job = app.enqueue_by_name("record", ["pinged"])
    assert app.get_job(job.id).wait(timeout=60).state is JobState.SUCCEEDED
    pinger = _hooks[app].pinger
    assert pinger is not None and pinger.flush(30)
    assert pinger.answered >= 1
    assert len(host.events("worker.started", kind="drain")) == 1


def test_ping_from_a_script_that_ends_at_once_is_sent(host: Host, listener: Listener) -> None:
    script = host.tmp / "script.py"
    script.write_text(
        "from tests.autostart.apps import record\nprint(record.enqueue('from a script').id)\n"
    )
    proc = host.popen([str(script)], autostart=f"ping:{listener.url}", wake_secret=SECRET)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert host.app.get_job(out.strip()).wait(timeout=60).state is JobState.SUCCEEDED


def test_ping_to_a_dead_or_silent_server_neither_raises_nor_blocks(sqlite_host: Host) -> None:
    # A port nobody listens on, and one that accepts connections but never answers
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/wake"
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        app = sqlite_host.enqueuing_app(autostart=f"ping:{dead},{url}", wake_timeout=5.0)
        jobs = [app.enqueue_by_name("record", [str(n)]) for n in range(5)]
        pinger = _hooks[app].pinger
        assert isinstance(pinger, Pinger)
        # Every enqueue returned while the silent server still holds the first round
        assert pinger.rounds == 0
        assert all(app.get_job(j.id).state is JobState.QUEUED for j in jobs)
        assert pinger.flush(timeout=60)  # the rounds end by the timeout
        assert pinger.rounds >= 1 and pinger.answered == 0
    finally:
        silent.close()
