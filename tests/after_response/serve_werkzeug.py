"""``python -m tests.after_response.serve_werkzeug module:attr PORT``: werkzeug's own
threaded server (what ``flask run`` uses), for the tests."""

from __future__ import annotations

import importlib
import sys

from werkzeug.serving import run_simple


def main(target: str, port: int) -> None:
    module, attr = target.split(":")
    application = getattr(importlib.import_module(module), attr)
    run_simple("127.0.0.1", port, application, threaded=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
