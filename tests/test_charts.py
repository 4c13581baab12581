"""The Train tab's chart functions: hand-built rows in, figure data out. No model, no server."""

from __future__ import annotations

import json
import math
from typing import Any

import plotly.graph_objects as go
import pytest

from workbench.core.charts import (EMPTY_TEXT, GIB, HEIGHT, UIREVISION, Progress,
                                   format_duration, is_empty, loss_figure, lr_figure,
                                   memory_figure, progress, progress_html, progress_text,
                                   recall_figure, throughput_figure,
                                   ceiling_tokens_per_s)

KEYS = ("epoch", "loss", "lr", "grad_norm", "tokens", "step_seconds", "tokens_per_s",
        "mem_allocated", "mem_reserved", "mem_peak", "mem_capacity", "gpu_util", "power_w",
        "mfu", "micro_batch_size", "grad_accum", "examples")


def row(step: int, **values: Any) -> dict[str, Any]:
    """A metrics row as the store returns it: every column present, None unless given."""
    return {"step": step, **{k: None for k in KEYS}, "time": 1000.0 + step, **values}


def traces(fig: go.Figure) -> dict[str, go.Scatter]:
    return {t.name: t for t in fig.data}


def xy(trace: go.Scatter) -> tuple[list[Any], list[Any]]:
    return list(trace.x), list(trace.y)


ALL_FIGURES = [loss_figure, lr_figure, memory_figure, throughput_figure, recall_figure]


# --- shared look and empty state ------------------------------------------------------------


@pytest.mark.parametrize("make", ALL_FIGURES)
def test_every_figure_shares_the_layout(make: Any) -> None:
    fig = make([row(1, loss=1.0, lr=1e-4, mem_allocated=GIB, tokens_per_s=10.0,
                    efficacy=0.5)])
    layout = fig.layout
    assert layout.height == HEIGHT
    assert layout.template.layout.paper_bgcolor is not None  # plotly_white applied
    assert layout.uirevision == UIREVISION
    assert layout.legend.orientation == "h" and layout.legend.y >= 1
    assert layout.xaxis.title.text == "step"
    assert not is_empty(fig)
    json.dumps(fig.to_plotly_json(), default=str)  # serialisable for gr.Plot


@pytest.mark.parametrize("make", ALL_FIGURES)
@pytest.mark.parametrize("rows", [[], None, [row(1), row(2)]])
def test_no_rows_or_only_missing_values_show_no_data_yet(make: Any, rows: Any) -> None:
    fig = make(rows)
    assert len(fig.data) == 0
    assert is_empty(fig)
    assert [a.text for a in fig.layout.annotations] == [EMPTY_TEXT]
    # An empty axes box is hidden rather than drawn around nothing.
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False


def test_rows_are_drawn_in_step_order_once_per_step() -> None:
    # The tab appends each poll's rows; a repeated or out-of-order poll must not zig-zag.
    rows = [row(2, loss=2.0), row(1, loss=1.0), row(2, loss=2.5), row(3, loss=3.0)]
    assert xy(traces(loss_figure(rows))["loss"]) == ([1, 2, 3], [1.0, 2.5, 3.0])


# --- loss and learning rate -----------------------------------------------------------------


def test_loss_skips_missing_and_non_finite_points_and_puts_grad_norm_on_its_own_axis() -> None:
    rows = [row(1, loss=2.0, grad_norm=5.0), row(2, loss=None, grad_norm=4.0),
            row(3, loss=float("nan"), grad_norm=None), row(4, loss=1.5, grad_norm=3.0)]
    fig = loss_figure(rows)
    t = traces(fig)
    assert list(t) == ["loss", "grad norm"]
    assert xy(t["loss"]) == ([1, 4], [2.0, 1.5])
    assert xy(t["grad norm"]) == ([1, 2, 4], [5.0, 4.0, 3.0])
    assert t["grad norm"].yaxis == "y2" and t["loss"].yaxis in (None, "y")
    assert fig.layout.yaxis2.overlaying == "y"
    assert fig.layout.yaxis.title.text == "loss"


def test_loss_without_grad_norm_has_no_second_trace_or_axis() -> None:
    fig = loss_figure([row(1, loss=2.0), row(2, loss=1.0)])
    assert [t.name for t in fig.data] == ["loss"]
    assert "yaxis2" not in fig.to_plotly_json()["layout"]


def test_a_single_point_is_drawn_as_a_marker() -> None:
    assert loss_figure([row(1, loss=2.0)]).data[0].mode == "markers"
    assert loss_figure([row(1, loss=2.0), row(2, loss=1.0)]).data[0].mode == "lines"


def test_lr_per_step() -> None:
    fig = lr_figure([row(1, lr=1e-5), row(2, lr=None), row(3, lr=2e-4)])
    assert xy(traces(fig)["learning rate"]) == ([1, 3], [1e-5, 2e-4])


# --- memory ---------------------------------------------------------------------------------


def capacity_line(fig: go.Figure) -> tuple[float, str]:
    (shape,) = fig.layout.shapes
    assert shape.y0 == shape.y1 and shape.line.dash == "dash"
    labels = [a.text for a in fig.layout.annotations if a.text.startswith("capacity")]
    return shape.y0, labels[0]


def test_memory_in_gib_with_the_rows_capacity_as_a_dashed_line() -> None:
    rows = [row(1, mem_allocated=2 * GIB, mem_reserved=3 * GIB, mem_peak=4 * GIB,
                mem_capacity=24 * GIB),
            row(2, mem_allocated=GIB // 2, mem_reserved=None, mem_peak=4 * GIB,
                mem_capacity=24 * GIB)]
    fig = memory_figure(rows)
    t = traces(fig)
    assert list(t) == ["allocated", "reserved", "peak"]
    assert xy(t["allocated"]) == ([1, 2], [2.0, 0.5])
    assert xy(t["reserved"]) == ([1], [3.0])
    assert xy(t["peak"]) == ([1, 2], [4.0, 4.0])
    # A peak of 4 of 24 GiB: the axis follows the run, the capacity is a note.
    low, high = fig.layout.yaxis.range
    assert low == 0 and 4.0 < high < 6.0
    assert fig.layout.shapes == ()
    assert [a.text for a in fig.layout.annotations] == ["capacity 24.0 GiB (peak uses 16.7%)"]


def test_memory_capacity_is_a_line_when_the_run_uses_a_fair_part_of_it() -> None:
    fig = memory_figure([row(1, mem_peak=10 * GIB, mem_capacity=24 * GIB)])
    assert capacity_line(fig) == (24.0, "capacity 24.0 GiB")
    # The axis reaches past the capacity so the line is on screen, not just the data.
    assert fig.layout.yaxis.range[1] > 24.0


def test_memory_of_a_cpu_run_is_not_a_flat_line_under_the_machines_ram() -> None:
    rows = [row(i, mem_allocated=(0.25 + 0.01 * i) * GIB, mem_peak=0.3 * GIB,
                mem_capacity=23.5 * GIB) for i in range(1, 5)]
    fig = memory_figure(rows)
    assert fig.layout.yaxis.range[1] < 0.5  # the data fills the chart
    assert "capacity 23.5 GiB" in fig.layout.annotations[0].text


def test_memory_capacity_argument_wins_over_the_rows() -> None:
    rows = [row(1, mem_allocated=3 * GIB, mem_capacity=24 * GIB)]
    fig = memory_figure(rows, capacity=8 * GIB)
    assert capacity_line(fig) == (8.0, "capacity 8.0 GiB")  # 3 of 8 GiB: in view
    assert fig.layout.yaxis.range[1] > 8.0


def test_memory_axis_covers_data_above_a_small_capacity() -> None:
    fig = memory_figure([row(1, mem_peak=10 * GIB)], capacity=8 * GIB)
    assert fig.layout.yaxis.range[1] > 10.0


def test_memory_on_cpu_omits_the_reserved_trace_and_unknown_capacity_draws_no_line() -> None:
    fig = memory_figure([row(1, mem_allocated=GIB, mem_peak=GIB)])
    assert [t.name for t in fig.data] == ["allocated", "peak"]
    assert fig.layout.shapes == ()


def test_memory_without_rows_still_shows_the_capacity_it_would_have_to_fit() -> None:
    fig = memory_figure([], capacity=24 * GIB)
    assert is_empty(fig)
    assert capacity_line(fig) == (24.0, "capacity 24.0 GiB")
    assert fig.layout.yaxis.visible is not False


# --- throughput -----------------------------------------------------------------------------


def test_throughput_tokens_per_s_and_mfu_as_percent_on_a_secondary_axis() -> None:
    rows = [row(1, tokens_per_s=1000.0, mfu=0.25), row(2, tokens_per_s=1200.0, mfu=None),
            row(3, tokens_per_s=None, mfu=0.3)]
    fig = throughput_figure(rows)
    t = traces(fig)
    assert xy(t["tokens/s"]) == ([1, 2], [1000.0, 1200.0])
    x, y = xy(t["MFU"])
    assert x == [1, 3] and y == pytest.approx([25.0, 30.0])
    assert t["MFU"].yaxis == "y2"
    assert fig.layout.yaxis2.ticksuffix == "%" and "%" in fig.layout.yaxis2.title.text
    # Its own fixed 0–100 % scale: MFU is proportional to tokens/s and on two auto-scaled
    # axes the two lines lay on top of each other.
    assert list(fig.layout.yaxis2.range) == pytest.approx([0, 102.0])
    assert fig.layout.yaxis2.autorange is False


def test_throughput_without_mfu_has_no_mfu_trace() -> None:
    fig = throughput_figure([row(1, tokens_per_s=10.0, mfu=None)])
    assert [t.name for t in fig.data] == ["tokens/s"]
    assert "yaxis2" not in fig.to_plotly_json()["layout"]
    assert fig.layout.title.text == "Throughput · 10 tok/s"  # no peak: no ceiling claimed


def test_throughput_title_gives_the_ceiling_at_full_mfu_from_the_latest_step() -> None:
    # MFU = rate × FLOPs/token ÷ peak, so the 100 % MFU rate is rate ÷ MFU.
    rows = [row(1, tokens_per_s=1000.0, mfu=0.25), row(2, tokens_per_s=4500.0, mfu=0.42),
            row(3, tokens_per_s=None, mfu=None)]
    assert throughput_figure(rows).layout.title.text == \
        "Throughput · 4,500 tok/s · MFU 42 % of a 10,714 tok/s ceiling"
    assert ceiling_tokens_per_s(rows[0]) == pytest.approx(4000.0)
    assert ceiling_tokens_per_s({"tokens_per_s": 5.0, "mfu": 0.0}) is None
    assert throughput_figure([]).layout.title.text == "Throughput"


# --- recall ---------------------------------------------------------------------------------


def test_recall_as_percent_with_a_fixed_0_to_100_range() -> None:
    curve = [{"step": 0, "efficacy": 0.0, "generalization": 0.1, "locality": 1.0},
             {"step": 35, "efficacy": 0.4, "generalization": 0.3},
             {"step": 70, "efficacy": 1.0, "generalization": 0.75, "locality": 0.9}]
    fig = recall_figure(curve)
    t = traces(fig)
    assert list(t) == ["efficacy", "generalization (held-out)", "locality"]
    x, y = xy(t["efficacy"])
    assert x == [0, 35, 70] and y == pytest.approx([0.0, 40.0, 100.0])
    x, y = xy(t["locality"])
    assert x == [0, 70] and y == pytest.approx([100.0, 90.0])
    assert list(fig.layout.yaxis.range) == [0, 100]
    assert "markers" in t["efficacy"].mode
    # Each series its own dash and marker: efficacy no longer hides under held-out.
    styles = {(tr.line.dash, tr.marker.symbol) for tr in t.values()}
    assert len(styles) == 3


def test_recall_shows_a_locality_measured_only_at_the_end() -> None:
    fig = recall_figure([{"step": 10, "efficacy": 0.2}, {"step": 20, "efficacy": 0.9,
                                                         "locality": 0.95}])
    loc = traces(fig)["locality"]
    assert xy(loc) == ([20], [pytest.approx(95.0)]) and "markers" in loc.mode
    assert loc.marker.size >= 8


def test_recall_without_locality_probes_omits_that_trace() -> None:
    fig = recall_figure([{"step": 5, "efficacy": 0.5}])
    assert [t.name for t in fig.data] == ["efficacy"]


# --- progress -------------------------------------------------------------------------------


def run_row(status: str = "running", total: int | None = 280, **extra: Any) -> dict[str, Any]:
    return {"status": status, "total_steps": total, "started_at": 1000.0, "created_at": 990.0,
            "ended_at": None, "heartbeat_at": 1100.0, "error": "", "method": "lora",
            "model": "tiny", "name": "run", **extra}


def test_progress_eta_is_mean_recent_step_time_times_steps_left() -> None:
    # 100 slow early steps, then 20 at 0.5 s: only the recent window counts.
    rows = [row(s, step_seconds=9.0, epoch=s / 56) for s in range(1, 101)]
    rows += [row(s, step_seconds=0.5 if s % 2 else 0.3, epoch=s / 56) for s in range(101, 121)]
    p = progress(run_row(), rows)
    assert (p.step, p.total) == (120, 280)
    assert p.epoch == pytest.approx(120 / 56)
    assert p.fraction == pytest.approx(120 / 280)
    assert p.eta_seconds == pytest.approx(0.4 * 160)
    assert p.status == "running"


def test_progress_eta_ignores_missing_step_times() -> None:
    rows = [row(1, step_seconds=1.0), row(2, step_seconds=None), row(3, step_seconds=3.0)]
    assert progress(run_row(total=10), rows).eta_seconds == pytest.approx(2.0 * 7)


@pytest.mark.parametrize("status", ["completed", "stopped", "failed", "interrupted",
                                    "stopping", "queued"])
def test_progress_has_no_eta_unless_training(status: str) -> None:
    p = progress(run_row(status), [row(10, step_seconds=1.0)])
    assert p.eta_seconds is None


def test_progress_unknown_total_and_no_rows() -> None:
    p = progress(run_row("starting", total=None), [])
    assert p == Progress(step=0, total=None, epoch=None, fraction=None, eta_seconds=None,
                         status="starting")
    assert progress(run_row(), []).fraction == 0.0
    assert progress(None, None).step == 0


def test_progress_completed_is_full_and_fraction_is_clamped() -> None:
    assert progress(run_row("completed", total=None), [row(50)]).fraction == 1.0
    assert progress(run_row("running", total=10), [row(12, step_seconds=1.0)]).fraction == 1.0
    assert progress(run_row("running", total=10),
                    [row(12, step_seconds=1.0)]).eta_seconds == 0.0


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"), (-3, "0 s"), (25, "25 s"), (24.6, "25 s"), (59.6, "1 min"), (60, "1 min"),
    (190, "3 min 10 s"), (3599, "59 min 59 s"), (3600, "1 h"), (3720, "1 h 2 min"),
    (3725, "1 h 2 min"), (26 * 3600 + 60, "26 h 1 min"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_progress_text_and_html() -> None:
    p = Progress(step=120, total=280, epoch=2.14, fraction=120 / 280, eta_seconds=25.2,
                 status="running")
    assert progress_text(p) == "step 120 / 280 · epoch 2.1 · ETA 25 s"
    page = progress_html(p)
    assert "step 120 / 280 · epoch 2.1 · ETA 25 s" in page
    assert 'width:42.9%' in page and 'aria-valuenow="42.9"' in page
    assert "http" not in page and "<script" not in page and "<link" not in page


def test_progress_text_leaves_out_unknown_parts() -> None:
    p = Progress(step=7, total=None, epoch=None, fraction=None, eta_seconds=None)
    assert progress_text(p) == "step 7"
    assert "aria-valuenow" not in progress_html(p)


def test_progress_html_escapes_text() -> None:
    p = Progress(step=1, total=2, epoch=None, fraction=0.5, eta_seconds=None,
                 status='<img src=x onerror="alert(1)">')
    page = progress_html(p)
    assert "<img" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_charts_use_no_nan_that_json_cannot_carry() -> None:
    fig = loss_figure([row(1, loss=float("inf"), grad_norm=float("nan")), row(2, loss=1.0)])
    values = [v for t in fig.data for v in t.y]
    assert values == [1.0] and all(math.isfinite(v) for v in values)


def test_a_capped_mfu_reads_as_an_estimate_in_the_title() -> None:
    fig = throughput_figure([row(1, tokens_per_s=900.0, mfu=1.0)])
    assert fig.layout.title.text == ("Throughput · 900 tok/s · MFU ~100 % (estimate: above the "
                                     "measured peak)")
