"""A process that enqueues batches of jobs in bulk until it is killed.

``python -m tests.faults.bulk_enqueue RUN SIZE`` (store from ``OFFLOAD_URL``): prints
``ready`` once imported and connected, then enqueues batch after batch of SIZE ``work``
jobs, each job's first argument naming its batch (``RUN:k``), printing ``committed`` after
each batch is stored.
"""

from __future__ import annotations

import sys

from tests.faults import apps


def main(run: str, size: int) -> None:
    task = apps.app.tasks["tests.faults.apps.work"]
    apps.app.store.now()  # connect (and migrate) before saying ready
    print("ready", flush=True)
    batch = 0
    while True:
        task.enqueue_many([(f"{run}:{batch}", i, 0) for i in range(size)])
        print("committed", flush=True)
        batch += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
