"""The error tree documented in offload.errors is what offload exports."""

from __future__ import annotations

import re

import offload
from offload import errors
from offload.types import ErrorInfo


def test_every_documented_error_is_exported_and_derives_from_offload_error() -> None:
    documented = re.findall(r"[├└]─ (\w+)", errors.__doc__ or "")
    assert "SchemaError" in documented and len(documented) == 21
    for name in documented:
        assert name in offload.__all__, name
        assert issubclass(getattr(offload, name), offload.OffloadError), name


def test_job_failed_carries_the_error_info() -> None:
    info = ErrorInfo("ValueError", "bad input", "Traceback ...")
    exc = offload.JobFailed("j1", info)
    assert exc.error is info
    assert (exc.error_type, exc.error_message, exc.traceback) == (
        "ValueError",
        "bad input",
        "Traceback ...",
    )
    assert str(exc) == "job j1 failed: ValueError: bad input"
    assert offload.JobFailed("j2", None).error_type == "Error"
