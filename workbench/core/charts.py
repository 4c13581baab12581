"""A run's charts (the Train and Runs tabs, the HTML report), as pure functions from stored
rows to plotly figures.

Why pure functions: the tab re-draws every chart on each poll from the rows `run_status()`
returns, so keeping "rows → figure" free of gradio, the store and any state makes each chart
testable by building rows by hand and lets the CLI, the report or a notebook draw the same
pictures.

Inputs are the `metrics` table's rows (one per optimizer step; any value may be None where
the device cannot report it), the recall curve of `probing.recall_curve()` and a `runs` row.
A None (or non-finite) value is skipped rather than plotted as zero, and a series with no
values at all gets no trace, so e.g. a CPU run shows no "reserved" line instead of a flat one.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from workbench.core.data.names import ACTIVE, RunStatus, ScoreMetric, StepMetric

Row = Mapping[str, Any]

GIB = 2 ** 30
HEIGHT = 260
# A constant uirevision tells plotly the figure is "the same chart, new data", so a user's
# zoom, pan and hidden legend entries survive the re-draw on every live poll.
UIREVISION = "train-charts"
EMPTY_TEXT = "no data yet"
# Steps whose step time predicts the rest: recent enough to follow a change of speed (e.g.
# after warm-up or a resume on another device), many enough to smooth out single slow steps.
ETA_WINDOW = 20

# One colour per quantity, the same on every chart.
COLORS = {
    StepMetric.LOSS: "#1f77b4", StepMetric.GRAD_NORM: "#9aa5b1", StepMetric.LR: "#9467bd",
    StepMetric.MEM_ALLOCATED: "#1f77b4", StepMetric.MEM_RESERVED: "#ff7f0e",
    StepMetric.MEM_PEAK: "#d62728",
    "capacity": "#555555", StepMetric.TOKENS_PER_S: "#2ca02c", StepMetric.MFU: "#8c564b",
    ScoreMetric.EFFICACY: "#1f77b4", ScoreMetric.GENERALIZATION: "#ff7f0e",
    ScoreMetric.LOCALITY: "#2ca02c",
}

RECALL_STYLE = {ScoreMetric.EFFICACY: ("solid", "circle"),
                ScoreMetric.GENERALIZATION: ("dash", "square-open"),
                ScoreMetric.LOCALITY: ("dot", "diamond")}

# The memory axis reaches the capacity line only when the peak is at least 1/3 of it.
CAPACITY_IN_VIEW = 3.0

RECALL_SERIES = ((ScoreMetric.EFFICACY, "efficacy"),
                 (ScoreMetric.GENERALIZATION, "generalization (held-out)"),
                 (ScoreMetric.LOCALITY, "locality"))


# --- shared helpers -------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """The value as a float, or None when missing; NaN/inf (a diverged loss) also count as
    missing, since plotly cannot draw them and JSON cannot carry them."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _by_step(rows: Iterable[Row] | None) -> list[Row]:
    """Rows in step order, one per step (the last wins), rows without a step dropped. The tab
    appends each poll's new rows, so a repeated poll must not draw a step twice."""
    latest: dict[int, Row] = {}
    for row in rows or ():
        step = row.get("step")
        if step is not None:
            latest[int(step)] = row
    return [latest[step] for step in sorted(latest)]


def _series(rows: list[Row], key: str, scale: float = 1.0) -> tuple[list[int], list[float]]:
    """(steps, values) of one column, skipping the steps where it is missing."""
    xs: list[int] = []
    ys: list[float] = []
    for row in rows:
        value = _number(row.get(key))
        if value is not None:
            xs.append(int(row["step"]))
            ys.append(value * scale)
    return xs, ys


def _line(x: list[int], y: list[float], name: str, color: str, **kwargs: Any) -> go.Scatter:
    # A single point draws no line, so show markers until there are two.
    mode = "lines" if len(x) > 1 else "markers"
    return go.Scatter(x=x, y=y, name=name, mode=kwargs.pop("mode", mode),
                      line={"color": color, "width": 2, **kwargs.pop("line", {})},
                      marker=kwargs.pop("marker", {"color": color, "size": 6}), **kwargs)


def _hover(value: str) -> str:
    # Name the trace in the text itself and drop the side box: the same in unified and
    # per-point hover modes.
    return f"%{{fullData.name}}: {value}<extra></extra>"


def _layout(fig: go.Figure, title: str, y_title: str, *, secondary: str | None = None) -> None:
    """The look every Train chart shares; `secondary` titles a right-hand y-axis."""
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "y": 0.98, "yanchor": "top",
               "font": {"size": 14}},
        template="plotly_white",
        height=HEIGHT,
        margin={"l": 56, "r": 56 if secondary else 16, "t": 56, "b": 40},
        # Left-aligned under the title: the top right is where plotly's mode bar appears.
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom",
                "font": {"size": 11}},
        hovermode="x unified",
        uirevision=UIREVISION,
        xaxis={"title": {"text": "step"}, "rangemode": "tozero"},
        yaxis={"title": {"text": y_title}},
    )
    if secondary:
        # Overlaid on the same plot area; no grid of its own so the two grids do not clash, and
        # tickmode "auto" for round ticks (left unset, the ticks came out as 0.98, 1.97, …).
        fig.update_layout(yaxis2={"title": {"text": secondary}, "overlaying": "y",
                                  "side": "right", "showgrid": False, "rangemode": "tozero",
                                  "tickmode": "auto"})


def _empty_if_no_data(fig: go.Figure, *, keep_axes: bool = False) -> go.Figure:
    """Say "no data yet" instead of showing a blank axes box. `keep_axes` leaves the axes up
    when the figure still carries something worth seeing (the memory capacity line)."""
    if any(len(trace.x or ()) for trace in fig.data):
        return fig
    fig.add_annotation(text=EMPTY_TEXT, name="empty", xref="paper", yref="paper", x=0.5,
                       y=0.5, showarrow=False, font={"size": 14, "color": "#888888"})
    if not keep_axes:
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return fig


def is_empty(fig: go.Figure) -> bool:
    """True when the figure shows the "no data yet" state."""
    return any(a.name == "empty" for a in fig.layout.annotations)


# --- charts ---------------------------------------------------------------------------------


def loss_figure(metrics: Iterable[Row] | None) -> go.Figure:
    """Training loss per step; the gradient norm as a faint dotted line on its own right-hand
    axis, since its scale differs from the loss and a spike in it explains a loss jump."""
    rows = _by_step(metrics)
    fig = go.Figure()
    x, y = _series(rows, StepMetric.LOSS)
    if x:
        fig.add_trace(_line(x, y, "loss", COLORS[StepMetric.LOSS],
                            hovertemplate=_hover("%{y:.4f}")))
    gx, gy = _series(rows, StepMetric.GRAD_NORM)
    if gx:
        fig.add_trace(_line(gx, gy, "grad norm", COLORS[StepMetric.GRAD_NORM], yaxis="y2",
                            opacity=0.7,
                            line={"width": 1, "dash": "dot"}, hovertemplate=_hover("%{y:.3g}")))
    _layout(fig, "Training loss", "loss", secondary="grad norm" if gx else None)
    return _empty_if_no_data(fig)


def lr_figure(metrics: Iterable[Row] | None) -> go.Figure:
    """Learning rate per step: shows warm-up and decay of the schedule."""
    rows = _by_step(metrics)
    fig = go.Figure()
    x, y = _series(rows, StepMetric.LR)
    if x:
        fig.add_trace(_line(x, y, "learning rate", COLORS[StepMetric.LR],
                            hovertemplate=_hover("%{y:.3e}")))
    _layout(fig, "Learning rate", "lr")
    # Learning rates are 1e-6…1e-3; plotly's SI prefixes ("200µ") read badly for them.
    fig.update_yaxes(exponentformat="e", rangemode="tozero")
    return _empty_if_no_data(fig)


def _capacity(rows: list[Row], capacity: float | None) -> float | None:
    """Device memory in bytes: the argument, else the latest row that reports it."""
    if _number(capacity) is not None:
        return float(capacity)  # type: ignore[arg-type]
    for row in reversed(rows):
        value = _number(row.get(StepMetric.MEM_CAPACITY))
        if value is not None:
            return value
    return None


def processes_note(processes: int | None, sharded: bool = False) -> str:
    """" · largest of 2 processes (FSDP)" for a run on several processes, else ''."""
    if not processes or processes < 2:
        return ""
    return f" · largest of {processes} processes ({'FSDP' if sharded else 'DDP'})"


def memory_figure(metrics: Iterable[Row] | None, capacity: float | None = None, *,
                  processes: int | None = None, sharded: bool = False) -> go.Figure:
    """Allocated, reserved and peak memory in GiB per step, against the device's capacity
    (bytes; from the argument, else from the rows). The y-axis is scaled to the run's own
    peak: a 0.3 GiB CPU run under a 23.5 GiB capacity line drew a flat line at the bottom.
    Where the capacity is within reach (a run using a fair part of its card: would it fit on
    a smaller one?) it is a dashed line on the axis; far above, it is a note of how much of
    it the peak uses. Before any row, the axis shows the capacity the run will have to fit.
    A run on several processes records the largest process's memory (the title says so)."""
    rows = _by_step(metrics)
    fig = go.Figure()
    top = 0.0
    for key, name in ((StepMetric.MEM_ALLOCATED, "allocated"),
                      (StepMetric.MEM_RESERVED, "reserved"), (StepMetric.MEM_PEAK, "peak")):
        x, y = _series(rows, key, 1 / GIB)
        if x:
            fig.add_trace(_line(x, y, name, COLORS[key],
                                hovertemplate=_hover("%{y:.2f} GiB")))
            top = max(top, *y)
    _layout(fig, "Memory" + processes_note(processes, sharded), "GiB")
    cap = _capacity(rows, capacity)
    if cap is not None:
        cap_gib = cap / GIB
        label = {"showarrow": False, "font": {"size": 11, "color": COLORS["capacity"]}}
        if top == 0 or cap_gib <= top * CAPACITY_IN_VIEW:
            fig.add_hline(y=cap_gib, line={"color": COLORS["capacity"], "dash": "dash",
                                           "width": 1.5},
                          annotation={"text": f"capacity {cap_gib:.1f} GiB", **label},
                          annotation_position="top left")
            top = max(top, cap_gib)
        else:
            fig.add_annotation(text=f"capacity {cap_gib:.1f} GiB (peak uses "
                               f"{100 * top / cap_gib:.1f}%)", name="capacity", xref="paper",
                               yref="paper", x=1, y=1, xanchor="right", yanchor="top", **label)
    if top > 0:
        # Fixed rather than auto range, so the capacity line (a shape, which autorange
        # ignores) is always on screen; a little head-room keeps its label inside.
        fig.update_yaxes(range=[0, top * 1.12])
    return _empty_if_no_data(fig, keep_axes=cap is not None)


def ceiling_tokens_per_s(row: Row) -> float | None:
    """The tokens/s this step would reach at 100 % MFU: the device's peak FLOP/s over the
    FLOPs a token costs. MFU = rate × FLOPs/token ÷ peak, so it is rate ÷ MFU."""
    rate, mfu = _number(row.get(StepMetric.TOKENS_PER_S)), _number(row.get(StepMetric.MFU))
    return rate / mfu if rate is not None and mfu else None


def throughput_title(rows: Sequence[Row]) -> str:
    """"Throughput · 4,500 tok/s · MFU 42 % of a 10,700 tok/s ceiling" from the latest step
    that has the figures: how far this run is from what the device could do."""
    for row in reversed(rows):
        rate, ceiling = _number(row.get(StepMetric.TOKENS_PER_S)), ceiling_tokens_per_s(row)
        if rate is None:
            continue
        if ceiling is None:
            return f"Throughput · {rate:,.0f} tok/s"
        if _number(row.get(StepMetric.MFU)) == 1.0:  # capped: above the calibrated peak
            return (f"Throughput · {rate:,.0f} tok/s · MFU ~100 % (estimate: above the measured "
                    "peak)")
        return (f"Throughput · {rate:,.0f} tok/s · MFU {100 * rate / ceiling:.0f} % of a "
                f"{ceiling:,.0f} tok/s ceiling")
    return "Throughput"


def throughput_figure(metrics: Iterable[Row] | None, *,
                      processes: int | None = None) -> go.Figure:
    """Tokens per second per step (of every process together), and model FLOPs utilisation in
    percent on a right-hand axis (the worker stores MFU as a fraction of the device's peak)."""
    rows = _by_step(metrics)
    fig = go.Figure()
    x, y = _series(rows, StepMetric.TOKENS_PER_S)
    if x:
        fig.add_trace(_line(x, y, "tokens/s", COLORS[StepMetric.TOKENS_PER_S],
                            hovertemplate=_hover("%{y:,.0f} tok/s")))
    mx, my = _series(rows, StepMetric.MFU, 100.0)
    if mx:
        fig.add_trace(_line(mx, my, "MFU", COLORS[StepMetric.MFU], yaxis="y2",
                            line={"width": 1.5, "dash": "dash"},
                            hovertemplate=_hover("%{y:.1f}%")))
    title = throughput_title(rows)
    if processes and processes > 1:
        title += f" · all {processes} processes"
    _layout(fig, title, "tokens/s", secondary="MFU (%)" if mx else None)
    fig.update_yaxes(rangemode="tozero")
    if mx:
        # MFU is tokens/s times a constant: on two auto-scaled axes the lines coincide and MFU
        # vanished under tokens/s. On a fixed 0–100 % axis its height is its real share.
        fig.update_layout(yaxis2={"ticksuffix": "%", "range": [0, max(100.0, *my) * 1.02],
                                  "autorange": False})
    return _empty_if_no_data(fig)


def recall_figure(recall: Iterable[Row] | None) -> go.Figure:
    """Share of probes answered correctly, in percent, at each probed step: efficacy (the
    trained phrasings), held-out generalization (phrasings never trained on) and locality
    (unrelated facts that must stay right). The range is fixed at 0–100 % so curves from
    different polls and runs compare by eye."""
    rows = _by_step(recall)
    fig = go.Figure()
    for key, name in RECALL_SERIES:
        x, y = _series(rows, key, 100.0)
        if x:
            # Probes are sparse (every few steps), so mark each probed point; cliponaxis off
            # keeps a marker at exactly 0 or 100 % whole. Efficacy and held-out often run at
            # the same height: a dash and a marker shape of its own keep each one visible.
            dash, symbol = RECALL_STYLE[key]
            fig.add_trace(_line(x, y, name, COLORS[key], mode="lines+markers", cliponaxis=False,
                                line={"dash": dash},
                                marker={"color": COLORS[key], "size": 8, "symbol": symbol},
                                hovertemplate=_hover("%{y:.0f}%")))
    _layout(fig, "Recall", "correct (%)")
    fig.update_yaxes(range=[0, 100], ticksuffix="%", autorange=False)
    return _empty_if_no_data(fig)


# --- progress -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    step: int
    total: int | None          # None until the worker has planned the run
    epoch: float | None
    fraction: float | None     # 0..1; None when the total is unknown
    eta_seconds: float | None  # None unless the run is training and its speed is known
    status: str = ""


def progress(run: Row | None, metrics: Iterable[Row] | None) -> Progress:
    """How far a run has got and, while it trains, when it should finish.

    The ETA is the mean `step_seconds` of the last ETA_WINDOW steps times the steps left. It
    counts optimizer steps only, not the pauses for live probing, so it reads a little early
    on runs that probe often; it is never shown for a run that is not training (an ended run
    has nothing left, and a stopping one ends at its next step, not at the total).
    """
    run = run or {}
    rows = _by_step(metrics)
    status = str(run.get("status") or "")
    step = int(rows[-1]["step"]) if rows else 0
    epoch = next((e for e in (_number(r.get(StepMetric.EPOCH)) for r in reversed(rows))
                  if e is not None),
                 None)
    total_value = _number(run.get("total_steps"))
    total = int(total_value) if total_value is not None and total_value > 0 else None

    if status == RunStatus.COMPLETED:
        fraction: float | None = 1.0
    elif total:
        fraction = min(max(step / total, 0.0), 1.0)
    else:
        fraction = None

    eta = None
    if total and status in ACTIVE and status != RunStatus.STOPPING:
        times = [t for t in (_number(r.get(StepMetric.STEP_SECONDS)) for r in rows[-ETA_WINDOW:])
                 if t is not None]
        if times:
            eta = sum(times) / len(times) * max(total - step, 0)
    return Progress(step=step, total=total, epoch=epoch, fraction=fraction, eta_seconds=eta,
                    status=status)


def format_duration(seconds: float) -> str:
    """"25 s", "3 min 10 s", "1 h 2 min": coarse enough to read at a glance."""
    total = max(0, int(round(seconds)))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, rest = divmod(total, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def progress_text(p: Progress) -> str:
    """"step 120 / 280 · epoch 2.1 · ETA 25 s"; parts that are unknown are left out."""
    parts = [f"step {p.step} / {p.total}" if p.total else f"step {p.step}"]
    if p.epoch is not None:
        parts.append(f"epoch {p.epoch:.1f}")
    if p.eta_seconds is not None:
        parts.append(f"ETA {format_duration(p.eta_seconds)}")
    return " · ".join(parts)


def progress_html(p: Progress) -> str:
    """A small self-contained progress bar (inline styles, no external assets)."""
    percent = 0.0 if p.fraction is None else round(p.fraction * 100, 1)
    bar_color = {RunStatus.FAILED: "#d62728", RunStatus.DIVERGED: "#d62728",
                 RunStatus.INTERRUPTED: "#ff7f0e", RunStatus.STOPPED: "#7f7f7f"
                 }.get(p.status, "#1f77b4")
    # aria-valuenow is omitted when the total is unknown: an indeterminate bar.
    value = f' aria-valuenow="{percent:g}"' if p.fraction is not None else ""
    status = (f'<span class="kw-progress-status" style="color:#666">{html.escape(p.status)}'
              f'</span>' if p.status else "")
    return (
        '<div class="kw-progress" style="font-size:13px;margin:4px 0">'
        '<div style="display:flex;justify-content:space-between;gap:8px;margin-bottom:3px">'
        f'<span class="kw-progress-text">{html.escape(progress_text(p))}</span>{status}</div>'
        f'<div role="progressbar" aria-valuemin="0" aria-valuemax="100"{value} '
        'style="height:8px;background:#e5e7eb;border-radius:4px;overflow:hidden">'
        f'<div style="height:100%;width:{percent:g}%;background:{bar_color};'
        'transition:width .3s"></div></div></div>'
    )
