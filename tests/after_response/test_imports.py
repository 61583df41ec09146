"""``import offload`` loads no web framework, and each integration loads only what it needs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FRAMEWORKS = ["starlette", "fastapi", "uvicorn", "flask", "werkzeug", "django", "asgiref"]


def loaded_after(statements: str) -> list[str]:
    report = f"print(json.dumps(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)))"
    code = f"import json, sys\n{statements}\n{report}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout))


@pytest.mark.parametrize(
    "statements",
    [
        "import offload",
        "import offload.after_response",
        "import offload.integrations, offload.integrations.asgi, offload.integrations.wsgi",
    ],
)
def test_core_and_plain_integrations_load_no_framework(statements: str) -> None:
    assert loaded_after(statements) == []


def test_django_integration_loads_only_asgiref() -> None:
    assert loaded_after("import offload.integrations.django") == ["asgiref"]


def test_after_response_outside_a_request_loads_no_framework(tmp_path: object) -> None:
    statements = (
        "import offload\n"
        f"app = offload.Offload('sqlite:///{tmp_path}/jobs.db')\n"
        "task = app.task(name='t')(lambda: None)\n"
        "task.after_response()"
    )
    assert loaded_after(statements) == []
