"""Declaring services and configuring them: every bad value is refused with a message
naming it, at declaration (no process needed)."""

from __future__ import annotations

import pytest

from offload import ConfigError, Offload, ServiceNotFound, Settings
from offload.services import Service, protocol


def test_service_registers_the_class_and_a_delivery_task_when_queued() -> None:
    app = Offload("sqlite:///unused.db")

    @app.service("mailer", when_down="queue", queue="mail")
    class Mailer(Service):
        def work(self, request: object) -> None: ...

    assert app._services["mailer"].cls is Mailer
    task = app.tasks["offload.service.mailer"]
    assert task.options.queue == "mail"
    assert sorted(app.services) == ["mailer"] and len(app.services) == 1
    with pytest.raises(ServiceNotFound, match="registered: mailer"):
        app.services["mail"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tick": 0}, "expected tick to be a positive number"),
        ({"instances": 0}, "expected instances to be an int from 1 to 64"),
        ({"when_down": "drop"}, "expected when_down to be 'raise' or 'queue'"),
        ({"recycle_after": (10, 5)}, "expected recycle_after"),
        ({"memory_limit": -1}, "expected memory_limit"),
        ({"idempotent": "yes"}, "expected idempotent to be a bool"),
        ({"queue": "Bad Queue"}, "expected queue to match"),
        ({"colour": "red"}, "unknown service option(s): colour"),
    ],
)
def test_bad_option_is_refused_by_name(options: dict[str, object], message: str) -> None:
    app = Offload("sqlite:///unused.db")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        app.service("svc", **options)  # type: ignore[arg-type]


def test_bad_name_class_or_duplicate_is_refused() -> None:
    app = Offload("sqlite:///unused.db")
    with pytest.raises(ConfigError, match="expected a service name"):
        app.service("Not A Name")
    with pytest.raises(ConfigError, match="has no work"):
        app.service("x")(type("NoWork", (), {}))
    with pytest.raises(ConfigError, match="decorates a class"):
        app.service("x")(lambda request: request)  # type: ignore[type-var]
    app.service("x")(type("One", (), {"work": lambda self, r: r}))
    with pytest.raises(ConfigError, match="already registered"):
        app.service("x")(type("Two", (), {"work": lambda self, r: r}))


def test_service_settings_are_checked() -> None:
    assert Settings(service_bind="127.0.0.1:0").service_bind == "127.0.0.1:0"
    assert Settings(service_bind="[::1]").service_bind == "[::1]"
    for bad, message in [
        ("host:99999", "port to be 0-65535"),
        (":80", "to name a host"),
        ("[::1", "as \\[v6 address\\]:port"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Settings(service_bind=bad)
    with pytest.raises(ConfigError, match="service_socket_dir to be an absolute path"):
        Settings(service_socket_dir="relative/dir")
    with pytest.raises(ConfigError, match="service_tick"):
        Settings(service_tick=0)
    env = Settings.from_env(
        {"OFFLOAD_SERVICE_BIND": "10.0.0.5:7000", "OFFLOAD_SERVICE_TIMEOUT": "2"}
    )
    assert (env.service_bind, env.service_timeout) == ("10.0.0.5:7000", 2.0)


def test_addresses_read_from_the_store_are_checked() -> None:
    assert str(protocol.parse_address("unix:/run/x.sock")) == "unix:/run/x.sock"
    assert str(protocol.parse_address("tcp:[::1]:80")) == "tcp:[::1]:80"
    for bad in ["unix:relative", "tcp:host", "tcp:host:0", "http://x", 7, "unix:/" + "a" * 200]:
        with pytest.raises(ValueError, match="expected"):
            protocol.parse_address(bad)
    assert protocol.is_loopback("127.0.0.5") and protocol.is_loopback("::1")
    assert not protocol.is_loopback("0.0.0.0") and not protocol.is_loopback("example.com")


def test_timeout_must_be_positive() -> None:
    app = Offload("sqlite:///unused.db")
    app.service("echo")(type("Echo", (), {"work": lambda self, r: r}))
    with pytest.raises(ValueError, match="expected timeout to be a positive number"):
        app.services["echo"].call(1, timeout=0)


def test_clients_load_neither_the_worker_nor_psutil() -> None:
    # What a web process imports to call a service.
    import json
    import subprocess
    import sys

    code = (
        "import json, sys, offload, offload.services, offload.services.client\n"
        "heavy = ['psutil', 'multiprocessing', 'offload.worker.supervisor', 'click']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
