"""Settings: each OFFLOAD_* variable parsed by its own parser, every value validated."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
import warnings
from pathlib import Path

import pytest

from offload.errors import ConfigError, ConfigWarning
from offload.settings import ENV_PARSERS, Settings

#: The parser each annotated type must use.
_BY_TYPE = {
    "str": "_text",
    "str | None": "_optional_text",
    "float": "_number",
    "float | None": "_optional_seconds",
    "int": "_integer",
    "int | None": "_optional_integer",
    "bool": "_flag",
}


def test_every_setting_has_a_parser_of_its_type() -> None:
    hints = typing.get_type_hints(Settings)
    names = {f.name for f in dataclasses.fields(Settings)}
    assert set(ENV_PARSERS) == names
    for name in names:
        annotation = str(hints[name]).replace("<class '", "").replace("'>", "")
        annotation = annotation.replace("typing.Optional[int]", "int | None")
        assert ENV_PARSERS[name].__name__ == _BY_TYPE[annotation], name


@pytest.mark.parametrize(
    ("variable", "raw", "field", "value"),
    [
        ("OFFLOAD_LEASE", "12", "lease", 12.0),
        ("OFFLOAD_LEASE", "2.5e1", "lease", 25.0),
        ("OFFLOAD_CONCURRENCY", "3", "concurrency", 3),
        ("OFFLOAD_CHILD_MEMORY_LIMIT", "", "child_memory_limit", None),
        ("OFFLOAD_CHILD_MEMORY_LIMIT", "none", "child_memory_limit", None),
        ("OFFLOAD_CHILD_MEMORY_LIMIT", "104857600", "child_memory_limit", 104857600),
        ("OFFLOAD_INLINE", "yes", "inline", True),
        ("OFFLOAD_INLINE", "0", "inline", False),
        ("OFFLOAD_HOSTNAME", "web-1", "hostname", "web-1"),
        ("OFFLOAD_HOSTNAME", "", "hostname", None),
        ("OFFLOAD_SYNCHRONOUS", "FULL", "synchronous", "FULL"),
    ],
)
def test_variables_are_parsed_by_type(variable: str, raw: str, field: str, value: object) -> None:
    settings = Settings.from_env({variable: raw})
    assert getattr(settings, field) == value
    assert type(getattr(settings, field)) is type(value)


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("OFFLOAD_LEASE", "soon", "OFFLOAD_LEASE: expected a float, got 'soon'"),
        ("OFFLOAD_CONCURRENCY", "two", "OFFLOAD_CONCURRENCY: expected an int, got 'two'"),
        ("OFFLOAD_INLINE", "maybe", "OFFLOAD_INLINE: expected a bool, got 'maybe'"),
        ("OFFLOAD_CHILD_MEMORY_LIMIT", "1.5", "OFFLOAD_CHILD_MEMORY_LIMIT: expected an int"),
        ("OFFLOAD_LEASE", "-1", "expected lease to be a positive number of seconds"),
        ("OFFLOAD_SYNCHRONOUS", "OFF", "expected synchronous to be NORMAL or FULL"),
    ],
)
def test_bad_variables_name_the_variable(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Settings.from_env({variable: raw})


def test_keyword_arguments_win_over_the_environment() -> None:
    settings = Settings.from_env({"OFFLOAD_LEASE": "12"}, lease=40.0)
    assert settings.lease == 40.0


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting\\(s\\): leese"):
        Settings.from_env({}, leese=1.0)


def test_heartbeat_must_be_shorter_than_lease() -> None:
    with pytest.raises(ConfigError, match="heartbeat"):
        Settings(lease=5.0, heartbeat=5.0)


def test_replace_validates_again() -> None:
    with pytest.raises(ConfigError, match="pool_max"):
        Settings().replace(pool_max=0)


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [("OFFLOAD_ULR", "OFFLOAD_URL"), ("OFFLOAD_CONCURENCY", "OFFLOAD_CONCURRENCY")],
)
def test_a_misspelled_variable_warns_with_the_closest_name(variable: str, suggestion: str) -> None:
    with pytest.warns(ConfigWarning, match=f"{variable} is not an offload setting.*{suggestion}"):
        settings = Settings.from_env({variable: "4"})
    assert settings == Settings()


def test_unrelated_offload_variables_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Settings.from_env({"OFFLOAD_APP": "a:b", "OFFLOAD_TEST_LEDGER": "x", "OFFLOAD_PG_BIN": "/"})


def test_a_task_defined_in_main_warns_at_decoration(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        "from offload import Offload\n"
        f"app = Offload('sqlite:///{tmp_path / 'jobs.db'}')\n"
        "@app.task\n"
        "def nameless(): ...\n"
        "@app.task(name='named')\n"
        "def named(): ...\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "always", str(script)], capture_output=True, text=True, check=True
    )
    assert proc.stderr.count("ConfigWarning") == 1
    assert "task '__main__.nameless' is defined in __main__" in proc.stderr
    assert "script.py:3" in proc.stderr  # points at the decorator line
