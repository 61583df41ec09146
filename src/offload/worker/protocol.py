"""Messages between a supervisor and its children: one JSON object per pipe message.

The pipe joins two processes of the same worker, so pickle would be safe enough, but JSON
keeps the rule "nothing is ever unpickled" without exceptions, and it makes every message
readable when debugging. Supervisor to child:

* ``{"op": "run", "jobs": [{...ClaimedJob...}, ...], "start_by": t}`` (only to an idle
  child): run these in order. ``start_by`` (None with one job) is a ``time.monotonic()``
  moment, on the clock every process of the machine shares: the child starts no job of
  the batch but the first at or after it, and sends
  ``{"op": "returned", "jobs": [ids], "runs": [[id, attempt], ...]}`` for the ones it did
  not start (the supervisor matches ``runs``: the same job may come back in a later batch
  with the next attempt). So once ``start_by`` has passed and the supervisor has read
  every ``done`` sent so far, it knows that the first job not reported done is the only
  one of the batch the child may still run, and that a ``returned`` for the rest is due.
* ``{"op": "cancel", "job": id}`` (someone asked to cancel the running job)
* ``{"op": "stop"}`` (finish: recycling or shutdown)

Child to supervisor: ``progress``, ``message``, ``save`` (each naming ``job`` and
``attempt``) while a job runs, then
``{"op": "done", "outcome": {...Outcome...}, "peak_rss": bytes, "seconds": run time}``
after each job of a batch.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from offload.types import ClaimedJob, JobState, Outcome

Message = dict[str, Any]


def encode(message: Message) -> bytes:
    """The bytes of one message."""
    return json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes) -> Message:
    """One message from its bytes; a malformed one becomes ``{"op": "invalid"}``."""
    try:
        value = json.loads(data)
    except ValueError:
        return {"op": "invalid"}
    return value if isinstance(value, dict) else {"op": "invalid"}


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(ClaimedJob))
_OUTCOME_FIELDS = tuple(f.name for f in dataclasses.fields(Outcome))


def job_to_dict(job: ClaimedJob) -> dict[str, Any]:
    """A claimed job as a JSON object (every field is a str, a number or None)."""
    return {name: getattr(job, name) for name in _JOB_FIELDS}


def job_from_dict(data: dict[str, Any]) -> ClaimedJob:
    """The inverse of :func:`job_to_dict`."""
    return ClaimedJob(**data)


def outcome_to_dict(outcome: Outcome) -> dict[str, Any]:
    """An outcome as a JSON object; the state travels as its string value."""
    data = {name: getattr(outcome, name) for name in _OUTCOME_FIELDS}
    data["state"] = outcome.state.value
    return data


def outcome_from_dict(data: dict[str, Any]) -> Outcome:
    """The inverse of :func:`outcome_to_dict`."""
    return Outcome(**{**data, "state": JobState(data["state"])})
