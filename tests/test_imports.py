"""`import offload` stays light: no driver, web, CLI or table-rendering code; nor do the
light worker modules load the supervisor's psutil and multiprocessing."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["psycopg", "psycopg_pool", "click", "rich", "starlette", "jinja2", "psutil"]
SUPERVISOR_ONLY = ["psutil", "multiprocessing"]


def _loaded_after(statements: str, modules: list[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``statements``."""
    report = f"print(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    code = f"import json, sys\n{statements}\n{report}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout))


def test_import_offload_loads_no_heavy_modules():
    assert _loaded_after("import offload", HEAVY) == []


def test_light_worker_modules_load_neither_psutil_nor_multiprocessing():
    statements = (
        "import offload, offload.worker.config, offload.worker.component\n"
        "from offload.worker import DrainSummary, Stats, WorkerConfig, drain_lock_name"
    )
    assert _loaded_after(statements, SUPERVISOR_ONLY) == []


def test_autostart_loads_neither_the_worker_nor_a_web_server():
    # What an enqueue with autostart on imports, in a web process.
    statements = (
        "import offload, offload.autostart, offload.autostart.spawn, offload.autostart.ping\n"
        "import offload.autostart.locks, offload.autostart.signing"
    )
    heavy = [*SUPERVISOR_ONLY, "offload.worker", "click", "http.server", "psycopg"]
    assert _loaded_after(statements, heavy) == []
    assert "offload.autostart" not in _loaded_after("import offload", ["offload.autostart"])


def test_public_names_are_exported():
    import offload

    for name in offload.__all__:
        assert hasattr(offload, name), name


def test_worker_names_are_exported():
    import offload.worker

    for name in [*offload.worker.__all__, "default_queues"]:
        assert hasattr(offload.worker, name), name
    assert "Supervisor" in dir(offload.worker)
