"""The dashboard's charts: shapes computed from counts, and the queue-depth samples a web
process keeps."""

from __future__ import annotations

from offload.web.dashboard import charts


def test_jobs_per_minute_stack_by_outcome_in_their_minute() -> None:
    now = 10_000 * 60 + 30.0  # half a minute into minute 10,000
    counts = {(10_000 * 60.0, "succeeded"): 6, (10_000 * 60.0, "failed"): 2,
              (9_990 * 60.0, "cancelled"): 1, (1.0, "succeeded"): 99}  # fmt: skip
    chart = charts.per_minute(counts, now, 60)
    assert {(b.kind, b.title.split(": ")[1]) for b in chart.bars} == {
        ("succeeded", "6 succeeded"), ("failed", "2 failed"), ("cancelled", "1 cancelled"),
    }  # fmt: skip
    now_bars = [b for b in chart.bars if "6 succeeded" in b.title or "2 failed" in b.title]
    assert len({round(b.x, 3) for b in now_bars}) == 1  # one column, stacked
    ok, bad = sorted(now_bars, key=lambda b: b.kind != "succeeded")
    assert bad.y + bad.height == ok.y  # failed sits on succeeded
    assert ok.y + ok.height == chart.plot_bottom
    assert [t.text for t in chart.ticks[:3]] == ["0", "5", "10"]  # the axis tops at 10
    assert chart.empty == ""
    assert charts.per_minute({}, now, 60).empty


def test_queue_depth_is_sampled_at_most_every_ten_seconds() -> None:
    sampler = charts.DepthSampler()
    sampler.offer(100.0, {("mail", "queued"): 3, ("mail", "running"): 1, ("idle", "failed"): 2})
    sampler.offer(105.0, {("mail", "queued"): 50})  # too soon: not kept
    sampler.offer(111.0, {("mail", "queued"): 1})
    assert sampler.samples() == [(100.0, {"mail": 3, "idle": 0}), (111.0, {"mail": 1})]
    chart = charts.depth_over_time(sampler.samples(), 111.0)
    assert [line.label for line in chart.lines] == ["mail", "idle"]
    assert len(chart.lines[0].points.split()) == 2
    sampler.offer(50.0, {("mail", "queued"): 1})  # the clock went back: start again
    assert sampler.samples() == [(50.0, {"mail": 1})]
    assert charts.depth_over_time(sampler.samples(), 50.0).empty


def test_many_queues_draw_the_deepest_and_sum_the_rest() -> None:
    depth = {f"q{i}": i for i in range(12)}
    chart = charts.depth_over_time([(0.0, depth), (10.0, depth)], 10.0)
    labels = [line.label for line in chart.lines]
    assert labels == [f"q{i}" for i in range(11, 3, -1)] + ["other"]
