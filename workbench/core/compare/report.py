"""One run as a single HTML file, to keep beside an exported model or send to someone who
has no workbench: what was trained (settings, model, knowledge set), how training went
(loss, learning rate, memory, throughput and recall charts) and what the model now knows
(the verdict, and the scorecard with sample answers of every subject side by side).

The file opens offline in any browser: plotly.js is inlined once, with the first chart, and
nothing is fetched from the network. Every text that comes from the user or a model (names,
the config, questions, answers) is escaped.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from workbench.core import charts
from workbench.core.compare.pool import BASE
from workbench.core.compare.scorecard import METRICS, Mark, Scorecard, ScoreRow
from workbench.core.data import knowledge, runs
from workbench.core.data.names import ScoreMetric
from workbench.core.scoring import percent
from workbench.core.store import Store
from workbench.core.train.history import duration
from workbench.core.train.jobs import get_run
from workbench.core.train.probing import UNCHANGED, recall_curve
from workbench.core.train.verdict import run_verdict
from workbench.core.workspace import Workspace

SAMPLE_ROWS = 20  # sample answers shown per metric
RIGHT, WRONG = "#dcfce7", "#fee2e2"  # cell backgrounds of ✓ and ✗
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
table.answers { table-layout: fixed; width: 100%; }
th { background: #f5f5f5; } td.num { text-align: right; white-space: nowrap; }
pre { background: #f7f7f7; padding: 12px; overflow-x: auto; font-size: 13px; }
.muted { color: #666; font-size: 13px; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px; }
.verdict { padding: 8px 12px; border-left: 4px solid #2e7d32; background: #f3f8f3; }
.verdict.warning { border-color: #ed6c02; background: #fdf6ee; }
.verdict.broken { border-color: #c62828; background: #fbeeee; }
"""
METRIC_HELP = {
    ScoreMetric.EFFICACY: "the trained questions",
    ScoreMetric.GENERALIZATION: "held-out paraphrases, never trained on",
    ScoreMetric.LOCALITY: "questions the base answered right; ✓ = still right, \"reworded\" = "
                          "its text differs from the base's",
    ScoreMetric.ABSTENTION: "questions whose right answer is 'I don't know'",
}


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "—"


def _score_cell(score: float | None, exact: float | None) -> str:
    if exact is None:  # no probes of this metric
        return "—"
    return f"{percent(score)} <span class='muted'>({percent(exact)})</span>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    """A table of cells that are already HTML (user text escaped before); a cell that is a
    whole `<td …>` or `<th …>` element is used as it is."""
    head = "<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead>"
    body = "".join("<tr>" + "".join(c if c.startswith(("<td", "<th")) else f"<td>{c}</td>"
                                    for c in row) + "</tr>" for row in rows)
    return f"<table class='{css}'>{head if header else ''}<tbody>{body}</tbody></table>"


# --- sections -------------------------------------------------------------------------------


def _set_name(store: Store, run: dict[str, Any]) -> str:
    return knowledge.set_name(store, run["set_id"]) or "—"


def _title(store: Store, run: dict[str, Any], metrics: list[dict[str, Any]]) -> str:
    seconds = duration(run)
    step = metrics[-1]["step"] if metrics else 0
    facts = [("run", f"{run['id']}"), ("status", run["status"]), ("method", run["method"]),
             ("model", run["model"]), ("knowledge set", _set_name(store, run)),
             ("created", _when(run["created_at"])), ("started", _when(run["started_at"])),
             ("ended", _when(run["ended_at"])),
             ("duration", charts.format_duration(seconds) if seconds is not None else "—"),
             ("steps", f"{step} / {run['total_steps'] or '?'}")]
    rows = [[f"<th>{_esc(k)}</th>", _esc(v)] for k, v in facts]
    error = f"<p>error: {_esc(run['error'])}</p>" if run.get("error") else ""
    return (f"<h1>{_esc(run['name'])}</h1><p class='muted'>Knowledge Workbench run report, "
            f"written {_when(time.time())}</p>{_table([], rows)}{error}")


def _verdict(store: Store, run: dict[str, Any]) -> str:
    """What the run's final round says, as the Train and Runs tabs and the CLI say it: the
    headline, what the model now gets wrong and what to try; nothing for a run without one
    (not finished, or not scored)."""
    found = run_verdict(store, run)
    if found is None:
        return ""
    lines = "".join(f"<p>{_esc(line)}</p>" for line in (*found.details, found.advice) if line)
    return (f"<h2>Verdict</h2><div class='verdict {_esc(found.level)}'>"
            f"<p><strong>{_esc(found.headline)}</strong></p>{lines}</div>")


def _config(run: dict[str, Any]) -> str:
    return f"<h2>Settings</h2><pre>{_esc(run['config_yaml'])}</pre>"


def _figures(store: Store, run_id: int, metrics: list[dict[str, Any]]) -> list[go.Figure]:
    return [charts.loss_figure(metrics), charts.lr_figure(metrics),
            charts.memory_figure(metrics), charts.throughput_figure(metrics),
            charts.recall_figure(recall_curve(store, run_id))]


def _charts(figures: Sequence[go.Figure]) -> str:
    """Each figure as a div; plotly.js goes inline with the first one only."""
    divs = [fig.to_html(full_html=False, include_plotlyjs=i == 0, config=PLOT_CONFIG)
            for i, fig in enumerate(figures)]
    return "<h2>Training</h2><div class='charts'>" + "".join(divs) + "</div>"


def _summary(card: Scorecard) -> str:
    counts = card.counts()
    header = ["subject"]
    for m in METRICS:  # locality's stricter "unchanged" share right beside it
        header += [f"{m} ({counts[m]})"] + (["unchanged"] if m == ScoreMetric.LOCALITY else [])
    summary = card.summary()
    rows = []
    for s in card.subjects:
        score = summary[s.key]
        cells = []
        for m in METRICS:
            cells.append(f"<td class='num'>{_score_cell(score[m], score[m + '_exact'])}</td>")
            if m == ScoreMetric.LOCALITY:
                same = score[UNCHANGED]
                text = ("reference" if s == BASE else "—") if same is None else percent(same)
                cells.append(f"<td class='num'>{text if counts[m] else '—'}</td>")
        rows.append([_esc(card.labels[s.key]), *cells])
    notes = "".join(f"<li>{_esc(card.labels.get(k, k))}: {_esc(v)}</li>"
                    for k, v in card.notes.items())
    notes += "".join(f"<li>{_esc(card.labels[s.key])}: {_esc(card.form_line(s.key))}</li>"
                     for s in card.subjects if card.form_line(s.key))
    return (f"<h2>Scorecard</h2><p class='muted'>Knowledge set {_esc(card.set_name)}. Share "
            "of probes answered correctly, exact match in brackets. Locality: questions the "
            "base answered right, still answered right; unchanged: the stricter share whose "
            "answer text is the base's (the base is its reference)."
            f"</p>{_table(header, rows)}" + (f"<ul class='muted'>{notes}</ul>" if notes else ""))


def _answer_cell(mark: Mark | None, reference: bool) -> str:
    if mark is None:
        return "<td>—</td>"
    sign, color = ("✓", RIGHT) if mark.correct else ("✗", WRONG)
    # A locality answer that is still right but worded differently from the base's.
    note = (" <span class='muted'>(reworded)</span>"
            if mark.correct and mark.unchanged is False and not reference else "")
    return f"<td style='background:{color}'>{sign} {_esc(mark.answer)}{note}</td>"


def _samples(card: Scorecard, metric: str) -> str:
    rows: list[ScoreRow] = [r for r in card.rows if r.item.metric == metric]
    if not rows:
        return ""
    header = ["question", "gold", *[_esc(card.labels[s.key]) for s in card.subjects]]
    cells = [[_esc(r.item.question), _esc(r.item.answer or "—"),
              *[_answer_cell(r.marks.get(s.key), metric == ScoreMetric.LOCALITY and s == BASE)
                for s in card.subjects]]
             for r in rows[:SAMPLE_ROWS]]
    shown = f"first {SAMPLE_ROWS} of {len(rows)}" if len(rows) > SAMPLE_ROWS else f"{len(rows)}"
    return (f"<h3>{_esc(metric)}</h3><p class='muted'>{_esc(METRIC_HELP[metric])} "
            f"({shown} probes)</p>{_table(header, cells, 'answers')}")


def _answers(card: Scorecard) -> str:
    return "<h2>Sample answers side by side</h2>" + "".join(_samples(card, m) for m in METRICS)


# --- the report -----------------------------------------------------------------------------


def report_html(store: Store, workspace: Workspace, run_id: int,
                scorecard: Scorecard | None) -> str:
    """The whole report as one HTML document. `scorecard` is base vs the run (and whatever
    else was compared); without one the report says how to get it."""
    run = get_run(store, run_id)
    metrics = runs.metrics(store, run_id)
    if scorecard is not None:
        scores = _summary(scorecard) + _answers(scorecard)
    else:
        scores = ("<h2>Scorecard</h2><p>This run has no trained model to score (it did not "
                  "finish or was stopped before saving).</p>")
    body = (_title(store, run, metrics) + _verdict(store, run) + _config(run)
            + _charts(_figures(store, run_id, metrics)) + scores)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_esc(run['name'])} · run {run_id}</title><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>")


def write_report(store: Store, workspace: Workspace, run_id: int, scorecard: Scorecard | None,
                 out: Path) -> Path:
    """Write `report_html(...)` to `out` (a file; its folder is created) and return it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_html(store, workspace, run_id, scorecard), encoding="utf-8")
    return out
