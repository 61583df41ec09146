"""`import offload` stays light: no driver, web, CLI or table-rendering code."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["psycopg", "psycopg_pool", "click", "rich", "starlette", "jinja2", "psutil"]


def test_import_offload_loads_no_heavy_modules():
    code = (
        f"import json, sys, offload; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_public_names_are_exported():
    import offload

    for name in offload.__all__:
        assert hasattr(offload, name), name
