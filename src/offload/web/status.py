"""What an end user may see of a job: the body of ``GET /status/{token}``.

State, progress, the message log, the saved values the job made public
(``ctx.save(key, value, public=True)``, stored under ``"public:" + key``) and, only for a
task declared with ``public_result=True``, the result of a job that succeeded. Never the
arguments, the options, the error or its traceback, the worker or the attempt counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from offload.context import PUBLIC_PREFIX
from offload.serialization import decode_options
from offload.types import JobMessage, JobRow, JobState
from offload.views import decode

#: Most log lines a status answer carries (the newest ones).
MESSAGE_LIMIT = 100


def public_status(row: JobRow, messages: Sequence[JobMessage]) -> dict[str, Any]:
    """The status of ``row`` as the user who holds its token sees it."""
    progress = row.progress
    saved = decode(row.saved)
    data = (
        {k[len(PUBLIC_PREFIX) :]: v for k, v in saved.items() if k.startswith(PUBLIC_PREFIX)}
        if isinstance(saved, dict)
        else {}
    )
    body: dict[str, Any] = {
        "state": row.state.value,
        "finished": row.state.finished,
        "progress": {
            "current": progress.current,
            "total": progress.total,
            "percent": progress.percent,
            "message": progress.message,
        },
        "messages": [{"at": m.at, "text": m.text} for m in messages],
        "data": data,
    }
    if row.state is JobState.SUCCEEDED and decode_options(row.options).get("public_result") is True:
        body["result"] = decode(row.result) if row.result is not None else None
    return body
