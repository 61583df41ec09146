"""The web package stays out of the core: ``import offload`` and making a status token
load no web framework."""

from __future__ import annotations

from tests.test_imports import _loaded_after

WEB = ["starlette", "jinja2", "prometheus_client", "uvicorn", "httpx"]


def test_import_offload_loads_no_web_code() -> None:
    assert _loaded_after("import offload", WEB) == []


def test_making_a_status_token_loads_no_web_code() -> None:
    statements = (
        "import offload.web.tokens\n"
        "from offload.web.tokens import sign, verify\n"
        "assert verify(sign('j', 's' * 16), 's' * 16) == 'j'"
    )
    assert _loaded_after(statements, WEB) == []
