"""Run-time histograms: counted by a worker, published in its process row, read back
(and checked) by ``/metrics``."""

from __future__ import annotations

import json

import pytest

from offload.histogram import BOUNDS, INFO_KEY, RunHistogram, from_info


def test_runs_are_counted_in_their_bucket_and_read_back_cumulative() -> None:
    h = RunHistogram()
    for seconds in (0.001, 0.005, 0.2, 0.2, 7.0, 5000.0):
        h.observe(seconds)
    info = json.loads(json.dumps({INFO_KEY: h.to_info()}))
    published = from_info(info)
    assert published is not None
    assert published.count == 6
    assert published.sum == pytest.approx(5007.406)
    cumulative = dict(published.buckets)
    assert cumulative[0.005] == 2  # a bound is inclusive
    assert cumulative[0.25] == 4
    assert cumulative[10.0] == 5
    assert cumulative[BOUNDS[-1]] == 5  # the run of 5000 s is only in +Inf (count)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "1", None])
def test_what_is_no_run_time_is_not_counted(bad: object) -> None:
    h = RunHistogram()
    h.observe(bad)
    assert h.count == 0 and sum(h.counts) == 0


def _info(**changes: object) -> dict[str, object]:
    value = {**RunHistogram().to_info(), **changes}
    return {INFO_KEY: value}


@pytest.mark.parametrize(
    "info",
    [
        None,
        "text",
        {},
        {INFO_KEY: "x"},
        _info(le=[1.0, 0.5], counts=[0, 0]),  # bounds must rise
        _info(le=[0.5], counts=[1, 2]),  # lengths differ
        _info(counts=[-1] + [0] * (len(BOUNDS) - 1)),
        _info(counts=[3] + [0] * (len(BOUNDS) - 1), count=2),  # more in buckets than runs
        _info(sum=float("nan")),
        _info(count=True),
        _info(le=[], counts=[]),
    ],
)
def test_a_histogram_of_another_shape_is_left_out(info: object) -> None:
    assert from_info(info) is None
