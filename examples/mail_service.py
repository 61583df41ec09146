"""An asynchronous mail sender: web code hands it mails with ``send()`` and goes on; the
service batches them and sends a batch every second (or once 50 are waiting), from
``loop()``. Sends made while it is down are stored as jobs (``when_down="queue"``) and
reach it once it is back.

    python -m examples.mail_service       # starts a worker that hosts it, then uses it

The "SMTP server" here is a file of sent mails, so the example runs anywhere.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from offload import Offload
from offload.services import Service

BATCH = 50
EVERY = 1.0


class Mailer(Service):
    def setup(self) -> None:
        self.outbox: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def work(self, request: dict[str, Any]) -> None:
        self.outbox.append({"to": request["to"], "subject": request["subject"]})
        if len(self.outbox) >= BATCH:
            self.flush()

    def loop(self) -> None:
        if self.outbox and time.monotonic() - self.last_flush >= EVERY:
            self.flush()

    def teardown(self) -> None:
        self.flush()  # nothing accepted is dropped on a clean stop

    def flush(self) -> None:
        with open(os.environ["MAIL_SPOOL"], "a") as spool:
            spool.write(json.dumps({"batch": self.outbox}) + "\n")
        self.outbox = []
        self.last_flush = time.monotonic()


app = Offload()
app.service("mailer", when_down="queue")(Mailer)


def main() -> None:
    from examples.service_runner import prepare, running_worker

    url = prepare()
    spool = url.removeprefix("sqlite:///") + ".mails"
    os.environ["MAIL_SPOOL"] = spool
    client = Offload()
    client.service("mailer", when_down="queue")(Mailer)
    with running_worker("examples.mail_service:app", ["mailer"]):
        began = time.perf_counter()
        for n in range(120):
            client.services["mailer"].send({"to": f"user{n}@example.com", "subject": "hello"})
        took = time.perf_counter() - began
        print(f"120 mails handed over in {took * 1000:.0f} ms (the request does not wait)")
    # The worker stopped cleanly: teardown() sent what was left.
    batches = [json.loads(line)["batch"] for line in open(spool)]
    print(f"sent: {sum(map(len, batches))} mails in {len(batches)} batches")
    client.close()


if __name__ == "__main__":
    main()
