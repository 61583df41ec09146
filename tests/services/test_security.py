"""The wire under attack, against a real service process: forged, replayed, oversized
and unfinished frames, wrong secrets and stale clocks. Raw sockets speak the protocol
with :mod:`offload.services.protocol`'s own helpers, then break it on purpose."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from offload import PayloadTooLarge
from offload.services import protocol
from offload.views import service_of
from tests.services.conftest import SECRET, Host, wait_for

KEY = protocol.key_of(SECRET)


@pytest.fixture
def secured(host: Host) -> Iterator[tuple[Host, str]]:
    """A host of ``slow`` with a secret; yields it and the service's socket path."""
    host.settings["secret"] = SECRET
    host.app.settings = host.app.settings.replace(secret=SECRET)
    host.start("--services", "slow")
    row = host.wait_ready(["slow"])["slow"]
    yield host, protocol.parse_address(service_of(row)[1]).path  # type: ignore[index]


_opened: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _opened.append(sock)
    sock.settimeout(20)
    sock.connect(path)
    return sock


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def closed(sock: socket.socket) -> bool:
    """The service closed the connection (EOF, or a reset), sending nothing more."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def handshake(
    path: str, key: bytes = KEY, name: str = "slow", now: float | None = None
) -> tuple[socket.socket, protocol.Framer, bytes, bytes]:
    """Authenticate; returns the socket, the client's framer, the hello sent, the answer."""
    sock = connect(path)
    challenge = protocol.read_hello(recv_exact(sock, protocol.HELLO_SIZE))
    hello = protocol.client_hello(key, challenge, name, now=now)
    sock.sendall(hello)
    first = recv_exact(sock, 1)
    if first == protocol.REFUSED:
        return sock, protocol.Framer(b"", service=False, cap=0), hello, first
    answer = first + recv_exact(sock, protocol.MAC_SIZE)
    protocol.check_answer(key, challenge, hello, answer)
    nonce = hello[protocol.NAME_SIZE : protocol.NAME_SIZE + protocol.NONCE_SIZE]
    framer = protocol.Framer(
        protocol.session_key(key, challenge, nonce), service=False, cap=2**20 + 1024
    )
    return sock, framer, hello, answer


def request(tag: str, request_id: int = 1) -> bytes:
    return f'{{"id":{request_id},"op":"call","payload":{{"tag":"{tag}"}}}}'.encode()


def read_reply(sock: socket.socket, framer: protocol.Framer) -> bytes:
    header = recv_exact(sock, protocol.HEADER_SIZE)
    body = recv_exact(sock, framer.body_length(header))
    return framer.check(header[protocol.HEADER.size :], body)


def runs_of(host: Host, tag: str) -> int:
    return sum(line.startswith(f"slow start {tag} ") for line in host.ledger_lines())


def still_serves(host: Host) -> None:
    assert host.app.services["slow"].call({"tag": "ok"}, timeout=20) == "ok"


def test_a_good_exchange_on_a_raw_socket_is_answered(secured: tuple[Host, str]) -> None:
    _, path = secured
    sock, framer, _, _ = handshake(path)
    sock.sendall(framer.encode(request("raw")))
    assert read_reply(sock, framer) == b'{"id":1,"ok":true,"reply":"raw"}'
    sock.close()


def test_forged_frame_closes_the_connection_unrun(secured: tuple[Host, str]) -> None:
    host, path = secured
    sock, framer, _, _ = handshake(path)
    body = request("forged")
    frame = bytearray(framer.encode(body))
    frame[protocol.HEADER.size] ^= 0x01  # one bit of the MAC
    sock.sendall(bytes(frame))
    assert closed(sock)
    # Tampering with the body instead fails the same way.
    sock, framer, _, _ = handshake(path)
    frame = bytearray(framer.encode(request("forged")))
    frame[-3] ^= 0x01
    sock.sendall(bytes(frame))
    assert closed(sock)
    still_serves(host)
    assert runs_of(host, "forged") == 0 and runs_of(host, "forgee") == 0


def test_hello_with_the_wrong_secret_is_refused(secured: tuple[Host, str]) -> None:
    host, path = secured
    sock, _, _, answer = handshake(path, key=b"not the secret at all")
    assert answer == protocol.REFUSED and closed(sock)
    # Without any secret (an empty key), the same.
    sock, _, _, answer = handshake(path, key=b"")
    assert answer == protocol.REFUSED and closed(sock)
    still_serves(host)


def test_hello_with_a_stale_clock_is_refused(secured: tuple[Host, str]) -> None:
    _, path = secured
    sock, _, _, answer = handshake(path, now=time.time() - 10 * protocol.MAX_SKEW)
    assert answer == protocol.REFUSED and closed(sock)


def test_replayed_exchange_is_refused_and_runs_nothing(secured: tuple[Host, str]) -> None:
    host, path = secured
    # A captured exchange: the hello and one request frame, answered.
    sock, framer, hello, _ = handshake(path)
    frame = framer.encode(request("once"))
    sock.sendall(frame)
    assert b'"reply":"once"' in read_reply(sock, framer)

    # The same frame again on the same connection: out of sequence, dropped.
    sock.sendall(frame)
    assert closed(sock)

    # The whole exchange replayed on a new connection: a new challenge, so it fails.
    replay = connect(path)
    assert recv_exact(replay, protocol.HELLO_SIZE).startswith(protocol.MAGIC)
    replay.sendall(hello + frame)
    assert recv_exact(replay, 1) == protocol.REFUSED and closed(replay)
    still_serves(host)
    assert runs_of(host, "once") == 1


def test_oversized_frame_is_refused_before_its_body_is_read(secured: tuple[Host, str]) -> None:
    host, path = secured
    sock, _, _, _ = handshake(path)
    # A header announcing 100 MB, and nothing of the body: refused on the header alone.
    sock.sendall(struct.pack(">I", 100 * 2**20) + b"\0" * protocol.MAC_SIZE)
    began = time.monotonic()
    assert closed(sock)
    assert time.monotonic() - began < 5.0
    still_serves(host)
    with pytest.raises(PayloadTooLarge):
        host.app.services["slow"].call({"tag": "x" * (2**20 + 1)}, timeout=20)


def test_slow_client_never_finishing_its_frame_does_not_stop_others(
    secured: tuple[Host, str],
) -> None:
    host, path = secured
    # One client stops halfway through its hello, another halfway through a frame.
    half_hello = connect(path)
    recv_exact(half_hello, protocol.HELLO_SIZE)
    half_hello.sendall(b"\0" * (protocol.CLIENT_HELLO_SIZE // 2))
    half_frame, framer, _, _ = handshake(path)
    frame = framer.encode(request("half"))
    half_frame.sendall(frame[: len(frame) // 2])

    # Others are served meanwhile, many times over.
    for i in range(20):
        assert host.app.services["slow"].call({"tag": f"other{i}"}, timeout=20) == f"other{i}"
    # The stalled connections are dropped once their time is up (5 s, then 10 s).
    half_hello.settimeout(30)
    half_frame.settimeout(30)
    assert closed(half_hello) and closed(half_frame)
    assert runs_of(host, "half") == 0
    wait_for(lambda: "service.slow_client" in host.logs(), what="the slow-client log line")


def test_hello_naming_another_service_is_answered_as_such(secured: tuple[Host, str]) -> None:
    _, path = secured
    sock, _, _, answer = handshake(path, name="echo")
    assert answer[0] == protocol.WRONG_SERVICE and closed(sock)
