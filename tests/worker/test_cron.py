"""The documented crontab line, run the way cron runs it: /bin/sh, an empty environment,
no terminal and no standard input."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from offload import Offload

ROOT = Path(__file__).resolve().parents[2]
APP = """
from offload import Offload

app = Offload()

@app.task(queue="default")
def receipt(order: int) -> int:
    return order * 2
"""


def crontab_line() -> str:
    text = (ROOT / "docs" / "howto" / "cron-drain.md").read_text()
    return re.search(r"^\* \* \* \* \* (.+)$", text, re.MULTILINE).group(1)  # type: ignore[union-attr]


def test_the_documented_crontab_line_drains_the_queue(tmp_path: Path) -> None:
    # Given the documented project layout: /srv/app with shop/jobs.py and a store in it.
    srv = tmp_path / "srv" / "app"
    (srv / "shop").mkdir(parents=True)
    (srv / "shop" / "__init__.py").write_text("")
    (srv / "shop" / "jobs.py").write_text(textwrap.dedent(APP))
    url = f"sqlite:///{srv / 'offload.db'}"
    app = Offload(url)
    app.task(name="shop.jobs.receipt")(lambda order: order)
    jobs = [app.enqueue_by_name("shop.jobs.receipt", [n]) for n in range(20)]

    # When cron runs the line (paths adjusted to this machine).
    command = crontab_line().replace("/srv/app", str(srv))
    assert command.startswith(f"cd {srv} && OFFLOAD_APP=shop.jobs:app offload drain")
    bin_dir = Path(sys.executable).parent
    # No OFFLOAD_URL: the default sqlite:///offload.db resolves in the cd target.
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        ["/bin/sh", "-c", command], env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=90,
    )  # fmt: skip

    # Then it exits 0 with a one-line summary and every job ran.
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(
        r"drain: 20 runs: 20 succeeded, 0 retried, 0 failed, 0 refused in [\d.]+ s\n", out.stdout
    )
    assert [j.refresh().result() for j in jobs] == [n * 2 for n in range(20)]
