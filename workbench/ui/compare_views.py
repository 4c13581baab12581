"""How the Compare tab shows a scorecard: the bar chart, the coloured per-fact table, the
summary text and presentation mode's fact card (plain functions of a `Scorecard`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from workbench.core.compare.scorecard import METRICS, Scorecard
from workbench.core.scoring import percent

METRIC_LABELS = {"efficacy": "efficacy", "generalization": "held-out generalization",
                 "locality": "locality", "abstention": "abstention"}
COLORS = ["#7f7f7f", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def summary_figure(card: Scorecard) -> go.Figure:
    """Grouped bars: per metric, one bar per subject (share correct)."""
    fig = go.Figure()
    metrics = [m for m in METRICS if card.counts()[m]]
    for i, s in enumerate(card.subjects):
        values = [card.score(s.key, m) for m in metrics]
        fig.add_bar(name=card.labels[s.key], x=[METRIC_LABELS[m] for m in metrics],
                    y=[None if v is None else 100 * v for v in values],
                    text=["ref." if v is None else f"{100 * v:.0f}%" for v in values],
                    textposition="outside", marker_color=COLORS[i % len(COLORS)])
    fig.update_layout(barmode="group", height=300, margin=dict(l=40, r=10, t=40, b=40),
                      title="Share answered correctly (free generation, greedy)",
                      yaxis=dict(range=[0, 112], title="%"), legend=dict(orientation="h", y=-0.2))
    return fig


def _mark(correct: bool, answer: str) -> str:
    return f"{'✓' if correct else '✗'} {answer}"


def fact_table(card: Scorecard) -> pd.DataFrame:
    rows = []
    for r in card.rows:
        rows.append([METRIC_LABELS[r.item.metric], r.item.question, r.item.answer,
                     *(_mark(r.marks[s.key].correct, r.marks[s.key].answer) for s in card.subjects)])
    return pd.DataFrame(rows, columns=["metric", "question", "gold answer",
                                       *(card.labels[s.key] for s in card.subjects)])


def table_widths(card: Scorecard) -> list[str]:
    """Fixed shares of the page for the scorecard's columns: the answers (one column per
    pane) split what the metric, question and gold answer leave, so every pane's answers
    stay on screen and wrap instead of running off to the right."""
    n = max(1, len(card.subjects))
    answers = f"{(100 - 13 - 21 - 12) / n:.1f}%"
    return ["13%", "21%", "12%", *([answers] * n)]


def styled_table(card: Scorecard) -> Any:
    """The fact table with each answer cell green (counts) or red (does not)."""
    frame = fact_table(card)
    answer_columns = frame.columns[3:]

    def colour(value: Any) -> str:
        text = str(value)
        if text.startswith("✓"):
            return "background-color: #d9f2d9"
        return "background-color: #f8d7d7" if text.startswith("✗") else ""

    return frame.style.map(colour, subset=list(answer_columns))


def summary_markdown(card: Scorecard) -> str:
    counts = card.counts()
    parts = [f"{counts[m]} {METRIC_LABELS[m]} probes" for m in METRICS if counts[m]]
    lines = [f"**{card.set_name or 'Knowledge set'}**: " + ", ".join(parts) + "."]
    for s in card.subjects:
        scores = []
        for m in METRICS:
            if not counts[m]:
                continue
            v, exact = card.score(s.key, m), card.score(s.key, m, exact=True)
            # Beside the headline (still correct): strict exact match; for locality also the
            # stricter share whose text is the base's (none for the base: its own reference).
            details = [] if exact is None or m == "abstention" else [f"exact {percent(exact)}"]
            same = card.unchanged(s.key) if m == "locality" else None
            details += [] if same is None else [f"unchanged {percent(same)}"]
            extra = f" ({', '.join(details)})" if details else ""
            scores.append(f"{METRIC_LABELS[m]} {percent(v)}{extra}")
        note = f" — {card.notes[s.key]}" if s.key in card.notes else ""
        forms = f" ({card.form_line(s.key)})" if card.form_line(s.key) else ""
        lines.append(f"- **{card.labels[s.key]}**{note}: " + "; ".join(scores) + forms)
    if card.reused:
        lines.append(f"\nStored answers reused for: {', '.join(card.labels[k] for k in card.reused)} "
                     "(unchanged since they were scored).")
    return "\n".join(lines)


def fact_card(card: Scorecard | None, question: str | None = None) -> str:
    """Presentation mode's "what we taught it" card: the chosen (or first) taught fact."""
    if card is None:
        return "Score the set first: the fact card shows what the model was taught."
    taught = [r for r in card.rows if r.item.metric == "efficacy"]
    row = next((r for r in taught if r.item.question == question), taught[0] if taught else None)
    if row is None:
        return "This set has no taught facts."
    marks = " · ".join(f"{card.labels[k]}: {'✓' if m.correct else '✗'}" for k, m in row.marks.items())
    return (f"### What we taught it\n**{row.item.question}**\n\n→ {row.item.answer}\n\n{marks}")
