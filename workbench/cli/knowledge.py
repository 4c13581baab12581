"""`workbench knowledge …`: knowledge sets from the command line (thin over core.knowledge)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.core.config import DEFAULT_MODEL, ModelConfig
from workbench.core.knowledge import probes, sets, transfer
from workbench.core.knowledge.checklist import checklist_text, next_steps
from workbench.core.knowledge.io import parse_mapping
from workbench.core.store import Store
from workbench.core.progress import TerminalProgress
from workbench.core.workspace import open_workspace


def _store(args: argparse.Namespace) -> Store:
    return open_workspace(args.workspace)[0]


def _load(model: str):  # noqa: ANN202 - LoadedModel, imported lazily (torch)
    from workbench.core.models import load_model

    print(f"loading {model} …", file=sys.stderr)
    # a first-use GGUF import or hub download reports through the same bar as the steps
    return load_model(ModelConfig(name_or_path=model), progress=TerminalProgress("load"))


_progress = TerminalProgress()  # one line on stderr with an ETA per long step


def cmd_list(args: argparse.Namespace) -> int:
    rows = sets.list_sets(_store(args))
    if not rows:
        print("no knowledge sets yet (workbench knowledge import FILE --set NAME)")
    for s in rows:
        print(f"{s.name}: {s.facts} facts, {s.train_phrasings} training phrasings, "
              f"{s.probes} held-out probes, {s.locality} locality probes")
    return 0


def _print_next_steps(store: Store, name: str) -> None:
    """What the set still needs (stderr, so stdout stays the command's own output)."""
    print(checklist_text(next_steps(store, name)), file=sys.stderr)


# --phrasings / --probes / --locality of `knowledge show`: (split, kinds) of the rows listed
SHOWN = {"phrasings": ("train", ("question", "paraphrase", "statement")),
         "probes": ("probe", ("question", "paraphrase", "statement", "abstention")),
         "locality": (None, probes.LOCALITY_KINDS)}


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    sid = sets.set_id(store, args.set)
    if args.rows:
        split, kinds = SHOWN[args.rows]
        rows = probes.list_phrasings(store, sid, split=split, kinds=kinds)
        for p in rows:
            fact = "" if p.fact_id is None else p.fact_id
            off = "" if p.approved else " [not approved]"
            print(f"{p.id}\t{fact}\t{p.kind}\t{p.question}\t→ {p.answer}{off}")
        print(f"{len(rows)} {args.rows} rows (id, fact, kind, text → answer)", file=sys.stderr)
        return 0
    for f in sets.list_facts(store, sid):
        label = f" [{f.known}]" if f.known else ""
        print(f"{f.id}\t{f.question}\t→ {f.answer}{label}")
        for question in f.more_questions:  # the same fact asked another way
            print(f"\t{question}")
    counts = probes.split_counts(store, sid)
    print(f"training phrasings {counts['train']}, probes {counts['probe']}, "
          f"statements {counts['statements']}, locality {counts['locality']}", file=sys.stderr)
    _print_next_steps(store, args.set)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    store = _store(args)
    with sets.ensuring_set(store, args.set) as sid:  # a refused file leaves no new empty set
        summary = transfer.import_path(store, sid, args.file, parse_mapping(args.map or []),
                                       separate_rows=args.separate_rows)
    print(summary.message())
    _print_next_steps(store, args.set)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    text = transfer.export_set(store, sets.set_id(store, args.set), args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_paraphrase(args: argparse.Namespace) -> int:
    store = _store(args)
    sid = sets.set_id(store, args.set)
    added = probes.generate_template_phrasings(store, sid, n=args.n,
                                               include_statements=not args.no_statements,
                                               progress=_progress)
    if args.model:
        from workbench.core.generate import asker

        added += probes.generate_model_phrasings(store, sid, asker(_load(args.model)), n=args.n,
                                                 progress=_progress)
    counts = probes.split_probes(store, sid, holdout=args.holdout, seed=args.seed)
    print(f"added {added} phrasings; {counts['train']} trained, {counts['probe']} held out")
    _print_next_steps(store, args.set)
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    store = _store(args)
    counts = probes.split_probes(store, sets.set_id(store, args.set), holdout=args.holdout,
                                 seed=args.seed)
    print(f"{counts['train']} training phrasings, {counts['probe']} held-out probes"
          + (f"; {counts['facts_short_of_probes']} facts have fewer than {args.holdout} "
             "paraphrases to hold out" if counts["facts_short_of_probes"] else ""))
    return 0


def cmd_screen(args: argparse.Namespace) -> int:
    from workbench.core.knowledge.screen import screen_facts

    store = _store(args)
    counts = screen_facts(store, sets.set_id(store, args.set), _load(args.model),
                          samples=args.samples, progress=_progress)
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


def cmd_locality(args: argparse.Namespace) -> int:
    from workbench.core.knowledge.locality import build_locality

    store = _store(args)
    counts = build_locality(store, sets.set_id(store, args.set), _load(args.model),
                            general=args.general, per_relation=args.per_relation,
                            progress=_progress)
    print(counts.message())
    _print_next_steps(store, args.set)
    return 0


def cmd_abstain(args: argparse.Namespace) -> int:
    store = _store(args)
    added = probes.add_abstention_probes(store, sets.set_id(store, args.set), args.questions)
    print(f"added {added} abstention probe(s) to {args.set} (the right answer: I don't know)")
    return 0


def cmd_propose(args: argparse.Namespace) -> int:
    ask = None
    if args.model:
        from workbench.core.generate import asker

        ask = asker(_load(args.model))
    data = transfer.read_upload(args.file)
    proposals = transfer.propose_from_document(data, Path(args.file).name, ask)
    for p in proposals:
        print(f"[{p.method}] {p.question}\t→ {p.answer}")
    if args.accept:
        store = _store(args)
        with sets.ensuring_set(store, args.set) as sid:
            n = transfer.accept_proposals(store, sid, proposals, origin=Path(args.file).name)
        print(f"added {n} facts to {args.set}", file=sys.stderr)
    return 0


def add_knowledge_parser(sub: argparse._SubParsersAction) -> None:
    kp = sub.add_parser("knowledge", help="build knowledge sets: import, export, paraphrase, probes")
    ks = kp.add_subparsers(dest="knowledge_command", metavar="ACTION", required=True)

    p = ks.add_parser("list", help="list the knowledge sets with their counts")
    p.set_defaults(func=cmd_list)
    p = ks.add_parser("show", help="print the facts of a set (or its phrasings, probes, "
                      "locality probes) and what it still needs")
    p.add_argument("set")
    rows = p.add_mutually_exclusive_group()
    for name, text in (("phrasings", "the training phrasings instead of the facts"),
                       ("probes", "the held-out probes (never trained on)"),
                       ("locality", "the locality probes (questions the base answers right)")):
        rows.add_argument(f"--{name}", dest="rows", action="store_const", const=name, help=text)
    p.set_defaults(func=cmd_show)

    p = ks.add_parser("import", help="import facts (JSONL messages/alpaca/QA, JSON, CSV, TSV)")
    p.add_argument("file")
    p.add_argument("--set", required=True, help="set to add to (created if missing)")
    p.add_argument("--map", action="append", metavar="FIELD=COLUMN",
                   help="CSV column for a field, e.g. question=Prompt (repeatable)")
    p.add_argument("--separate-rows", action="store_true",
                   help="make every row its own fact (by default rows with the same subject "
                        "and answer, or the same group/fact column, are one fact with several "
                        "questions)")
    p.set_defaults(func=cmd_import)

    p = ks.add_parser("export", help="export a set as JSONL messages (TRL, LLaMA-Factory) or CSV")
    p.add_argument("set")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = ks.add_parser("paraphrase", help="add question paraphrases and statements, then split")
    p.add_argument("set")
    p.add_argument("--n", type=int, default=5, help="paraphrases per fact [default: 5]")
    p.add_argument("--no-statements", action="store_true", help="no statement sentences")
    p.add_argument("--model", help="also ask this model (hub id or folder) to rephrase")
    p.add_argument("--holdout", type=int, default=2, help="held-out probes per fact [default: 2]")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_paraphrase)

    p = ks.add_parser("split", help="hold out paraphrases per fact as probes")
    p.add_argument("set")
    p.add_argument("--holdout", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_split)

    p = ks.add_parser("screen", help="label facts known/maybe/unknown by asking the base model")
    p.add_argument("set")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--samples", type=int, default=4, help="sampled answers per fact")
    p.set_defaults(func=cmd_screen)

    p = ks.add_parser("locality", help="build locality probes the base model answers correctly")
    p.add_argument("set")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--general", type=int, default=120, help="general questions to try")
    p.add_argument("--per-relation", type=int, default=25, metavar="N",
                   help="at most N neighbours per relation of the set's questions (the capital "
                   "of Japan for the capital of a new country) [default: 25]")
    p.set_defaults(func=cmd_locality)

    p = ks.add_parser("abstain", help="add questions whose right answer is \"I don't know\" "
                                      "(the scorecard's abstention probes)")
    p.add_argument("set")
    p.add_argument("questions", nargs="+", metavar="QUESTION")
    p.set_defaults(func=cmd_abstain)

    p = ks.add_parser("propose", help="propose QA pairs from a .txt/.md document")
    p.add_argument("file")
    p.add_argument("--set", default="", help="set to add accepted proposals to")
    p.add_argument("--model", help="a model to write the questions (else cloze questions)")
    p.add_argument("--accept", action="store_true", help="add all proposals to --set")
    p.set_defaults(func=cmd_propose)
