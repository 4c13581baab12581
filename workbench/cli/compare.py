"""`workbench probe` and `workbench export`: score a run against the base, other runs and the
no-training baselines, and take its model or an HTML report out of the workspace (thin over
core.compare)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.core.errors import WorkbenchError
from workbench.core.progress import TerminalProgress
from workbench.core.scoring import percent
from workbench.core.workspace import open_workspace

if TYPE_CHECKING:  # the core's compare modules import torch: loaded only when a command runs
    from workbench.core.compare.pool import ComparePool, Subject
    from workbench.core.compare.scorecard import Scorecard
    from workbench.core.store import Store
    from workbench.core.workspace import Workspace

BASELINE_CHOICES = ("in-context", "retrieval")


_progress = TerminalProgress()  # one line on stderr with an ETA per long step


def _run_dir(store: Store, workspace: Workspace, run_id: int) -> Path:
    from workbench.core.compare.pool import run_folder
    from workbench.core.train.jobs import get_run

    return run_folder(get_run(store, run_id), workspace)


def _scorecard(store: Store, workspace: Workspace, run_id: int, subjects: list[Subject], *,
               fresh: bool) -> tuple[Scorecard, ComparePool]:
    """Load what `subjects` need (the run's base first) and score them on the run's set."""
    from workbench.core.compare.pool import ComparePool, run_knowledge_set, run_output
    from workbench.core.compare.scorecard import build_scorecard

    run_output(store, workspace, run_id)  # says why before anything loads, if it cannot
    sid, set_name = run_knowledge_set(store, run_id)
    pool = ComparePool(store, workspace)
    print("loading models …", file=sys.stderr)
    pool.prepare(subjects)
    card = build_scorecard(store, pool, sid, subjects, set_name=set_name, reuse=not fresh,
                           progress=_progress)
    return card, pool


# ---- the table `workbench probe` prints ---------------------------------------------------


def _cell(card: Scorecard, key: str, metric: str) -> str:
    score, exact = card.score(key, metric), card.score(key, metric, exact=True)
    return "—" if exact is None else f"{percent(score)} ({percent(exact)})"


def _columns(card: Scorecard, key: str) -> list[str]:
    """One cell per metric, with locality's stricter "unchanged" share right after it."""
    from workbench.core.compare.pool import BASE
    from workbench.core.compare.scorecard import METRICS

    cells = []
    for m in METRICS:
        cells.append(_cell(card, key, m))
        if m == "locality":
            has = card.counts()["locality"] > 0
            cells.append(percent(card.unchanged(key)) if has and key != BASE.key else
                         ("reference" if has else "—"))
    return cells


def scorecard_lines(card: Scorecard, unavailable: dict[str, str]) -> list[str]:
    """Subjects as rows, one column per metric with its probe count in the header (and
    locality's "unchanged" beside it)."""
    from workbench.core.compare.scorecard import METRICS

    counts = card.counts()
    header = ["subject"]
    for m in METRICS:
        header += [f"{m} ({counts[m]})"] + (["unchanged"] if m == "locality" else [])
    rows = [[card.labels[s.key], *_columns(card, s.key)] for s in card.subjects]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"scorecard on knowledge set {card.set_name!r}", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    by_form = [f"{card.labels[s.key]}: {card.form_line(s.key)}" for s in card.subjects
               if card.form_line(s.key)]
    lines += ["", *by_form] if by_form else []
    lines += ["", "share of probes answered correctly, exact match in brackets;",
              "locality: known questions still answered correctly; unchanged: the stricter "
              "share whose answer text is the base's"]
    lines += [f"{card.labels[k]}: {note}" for k, note in card.notes.items()]
    if card.reused:
        lines.append(f"reused stored answers of {', '.join(card.reused)} (--fresh asks again)")
    lines += [f"not compared: {key}: {why}" for key, why in unavailable.items()]
    return lines


# ---- subcommands ---------------------------------------------------------------------------


def cmd_probe(args: argparse.Namespace) -> int:
    from workbench.core.compare.pool import Subject

    store, workspace = open_workspace(args.workspace)
    subjects = [Subject("run", args.run_id), *[Subject("run", r) for r in args.vs or []],
                *[Subject.parse(b) for b in args.baseline or []]]
    card, pool = _scorecard(store, workspace, args.run_id, list(dict.fromkeys(subjects)),
                            fresh=args.fresh)
    print("\n".join(scorecard_lines(card, pool.unavailable)))
    out = Path(args.json) if args.json else _run_dir(store, workspace, args.run_id) / "scorecard.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(card.as_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _report(store: Store, workspace: Workspace, run_id: int, out: Path) -> Path:
    """The run's report with base vs the run scored, or without a scorecard when the run left
    no model to score (a failed run's report still shows its settings and charts)."""
    from workbench.core.compare.pool import BASE, Subject, run_output
    from workbench.core.compare.report import write_report
    from workbench.core.errors import WorkbenchError

    card = None
    try:
        run_output(store, workspace, run_id)
    except WorkbenchError as err:
        print(f"note: {err}; the report has no scorecard", file=sys.stderr)
    else:
        card, _ = _scorecard(store, workspace, run_id, [BASE, Subject("run", run_id)],
                             fresh=False)
    return write_report(store, workspace, run_id, card, out)


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.core.export.folders import export_adapter, export_merged

    store, workspace = open_workspace(args.workspace)
    run_dir = _run_dir(store, workspace, args.run_id)  # an unknown run fails here
    if not args.gguf and (args.ollama or args.strict or args.no_rescore):
        raise WorkbenchError("--ollama, --strict and --no-rescore go with --gguf (the bundle)",
                             hint="e.g. workbench export RUN --gguf q8_0 --ollama")
    if args.gguf:
        return _bundle(store, workspace, args, Path(args.out or run_dir / "export"))
    if args.report:
        out = _report(store, workspace, args.run_id, Path(args.out or run_dir / "report.html"))
    elif args.adapter:
        out = export_adapter(store, workspace, args.run_id,
                             Path(args.out or run_dir / "adapter-export"))
    else:
        out = export_merged(store, workspace, args.run_id, Path(args.out or run_dir / "merged"),
                            progress=_progress)
    print(f"wrote {out}")
    return 0


def _bundle(store: Store, workspace: Workspace, args: argparse.Namespace, out: Path) -> int:
    """The export bundle; exit 1 when a GGUF could not be written, and with --strict when a
    file scored more than 2 points below the run."""
    from workbench.core.export.bundle import export_bundle

    kinds = list(dict.fromkeys(args.gguf))
    bundle = export_bundle(store, workspace, args.run_id, out, gguf=kinds,
                           modelfile=args.ollama, score=not args.no_rescore,
                           progress=_progress)
    print(f"wrote {bundle.folder}: {', '.join(bundle.files)}")
    for result in bundle.rescored:
        print(("LOST " if result.flagged else "") + result.line())
    if bundle.gguf_error:
        print(f"error: {bundle.gguf_error}", file=sys.stderr)
        return 1
    print(f"use it (from {bundle.folder}; also in its README.md):")
    for line in bundle.commands:
        print(f"  {line.replace('`', '')}")
    if args.strict and bundle.flagged:
        print(f"error: {len(bundle.flagged)} exported file(s) lost more than 2 points "
              "(--strict)", file=sys.stderr)
        return 1
    return 0


# ---- parsers -------------------------------------------------------------------------------


def add_compare_parsers(sub: Any) -> None:
    p = sub.add_parser("probe", help="score a run's fact recall against the base, other runs "
                       "and no-training baselines",
                       usage="workbench probe RUN [--vs RUN ...] [--baseline in-context|retrieval] "
                       "[--json FILE] [--fresh]")
    p.add_argument("run_id", type=int, metavar="RUN", help="id of a finished run")
    p.add_argument("--vs", type=int, action="append", metavar="RUN",
                   help="another run to score beside it (repeatable)")
    p.add_argument("--baseline", action="append", choices=BASELINE_CHOICES,
                   help="also score the base with the facts in its prompt: all of them "
                   "(in-context) or the few most similar to each question (retrieval); "
                   "repeatable")
    p.add_argument("--json", metavar="FILE",
                   help="where to write the scorecard as JSON [default: RUN's folder/"
                   "scorecard.json]")
    p.add_argument("--fresh", action="store_true",
                   help="ask every question again instead of reusing stored answers")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("export", help="export a run: a bundle with GGUF, Ollama and vLLM files "
                       "scored again, or its adapter, merged model or HTML report alone",
                       usage="workbench export RUN (--gguf {f16,q8_0} [--ollama] [--strict] | "
                       "--merged | --adapter | --report) [-o PATH]")
    p.add_argument("run_id", type=int, metavar="RUN", help="id of a finished run")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--gguf", action="append", choices=("f16", "q8_0"),
                      help="the bundle: adapter/, merged/, model-TYPE.gguf, Modelfile, README.md "
                      "and scorecard.json, each file scored again (repeat for both types) "
                      "[default -o: RUN's folder/export]")
    what.add_argument("--merged", action="store_true",
                      help="a standalone model: the adapter merged into the full-precision "
                      "base (or the run's own weights) [default --out: RUN's folder/merged]")
    what.add_argument("--adapter", action="store_true",
                      help="the peft adapter folder, for the same base [default --out: RUN's "
                      "folder/adapter-export]")
    what.add_argument("--report", action="store_true",
                      help="one offline HTML file: settings, charts, scorecard of base vs the "
                      "run and sample answers [default --out: RUN's folder/report.html]")
    p.add_argument("-o", "--out", metavar="PATH", help="target folder (or file, for --report); "
                   "a folder must not exist or be empty")
    p.add_argument("--ollama", action="store_true",
                   help="with --gguf: also an Ollama Modelfile for the (first) GGUF")
    p.add_argument("--strict", action="store_true",
                   help="with the bundle: exit 1 when an exported file scores more than 2 "
                   "points below the run on efficacy, held-out or locality")
    p.add_argument("--no-rescore", action="store_true",
                   help="with the bundle: skip scoring the exported files again")
    p.set_defaults(func=cmd_export)
